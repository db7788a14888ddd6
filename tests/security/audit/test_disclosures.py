"""The accounting of disclosures: each disclosure of one participant's PHI in the last six years, and nothing else."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from security.audit.hashing import format_time
from security.audit.models import AuditEvent
from security.models import User
from services.participants.models import Participant
from tenants.models import Community
from tests.factories import ParticipantFactory
from tests.support.audit import chained_events, recorded
from tests.support.clients import BETA_HOST, MemberClient, bearer
from tests.support.tokens import token_for

CSV_HEADER = [
    "date",
    "recipient",
    "recipient_name",
    "recipient_organisation",
    "recipient_address",
    "recipient_roles",
    "affiliation",
    "category",
    "description",
    "purpose",
    "purpose_statement",
    "basis",
    "break_glass",
    "audit_sequence",
]


def url(participant: Participant | uuid.UUID) -> str:
    key = participant.pk if isinstance(participant, Participant) else participant
    return f"/api/v1/participants/{key}/disclosures/"


def disclose(participant: Participant, recipient: User, **fields: Any) -> AuditEvent:
    """Record, in alpha's chain, an access by ``recipient`` to ``participant``'s record."""
    with schema_context("alpha"):
        return recorded(
            **{
                "actor_id": str(recipient.pk),
                "actor_roles": ["principal_investigator"],
                "action": "participant.read",
                "resource_type": "participant",
                "resource_id": str(participant.pk),
                "participant_pseudonyms": [participant.pseudonym],
                "purpose": "research_use",
                "outcome": "allow",
                "decision_id": uuid.uuid4().hex,
                **fields,
            }
        )


@dataclass
class History:
    """A participant whose PHI was disclosed three times, among accesses that are not disclosures."""

    participant: Participant
    recipient: User
    disclosed: list[AuditEvent]


@pytest.fixture
def history(alpha: Community, member: Callable[..., User]) -> History:
    participant, neighbour = ParticipantFactory.create(community=alpha), ParticipantFactory.create(community=alpha)
    recipient = member(
        alpha,
        "principal_investigator",
        full_name="Grace Hopper",
        organisation="Partner University Hospital",
        postal_address="1 College Street, Springfield",
    )
    # The chain's times never go backwards: the old events must come first.
    disclose(participant, recipient, occurred_at=timezone.now() - timedelta(days=7 * 365))
    within_six_years = disclose(participant, recipient, occurred_at=timezone.now() - timedelta(days=5 * 365))
    first = disclose(participant, recipient)
    disclose(participant, recipient, outcome="deny", reasons=["consent_not_covering_purpose"])
    disclose(participant, recipient, purpose="operations")
    disclose(neighbour, recipient)
    disclose(participant, recipient, action="audit.read", resource_type="audit")
    second = disclose(participant, recipient, action="observation.read", purpose="genomic", break_glass=True)
    return History(participant, recipient, [within_six_years, first, second])


@pytest.fixture
def signed_in(member_client: MemberClient) -> Callable[[str], APIClient]:
    return lambda role: member_client(role)[0]


@pytest.fixture
def stepped_up(member_client: MemberClient) -> APIClient:
    """A compliance officer of alpha who has just signed in with password and TOTP."""
    return member_client("compliance_officer", second_factor=True)[0]


def test_the_accounting_lists_each_disclosure_with_date_recipient_description_and_purpose(
    history: History, signed_in: Callable[[str], APIClient]
) -> None:
    response = signed_in("compliance_officer").get(url(history.participant))

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["participant"] == history.participant.pseudonym
    assert body["count"] == 3
    older, first, second = body["disclosures"]
    assert older["date"] == format_time(history.disclosed[0].occurred_at)
    # The access's own time: when its request staged it (the chain took it a moment later).
    assert history.disclosed[1].staged_at is not None
    assert history.disclosed[1].staged_at <= history.disclosed[1].occurred_at
    assert first == {
        "date": format_time(history.disclosed[1].staged_at),
        "source": "platform",
        "category": "disclosure",
        "recipient": {
            "user_id": str(history.recipient.pk),
            "email": history.recipient.email,
            "name": "Grace Hopper",
            "organisation": "Partner University Hospital",
            "address": "1 College Street, Springfield",
            "roles": ["principal_investigator"],
            "affiliation": "external",
        },
        "description": "Read of the participant's record, identifiers included",
        "redacted": False,
        "purpose": "research_use",
        "purpose_statement": "To carry out the research study you are enrolled in. "
        "Basis: no authorization or waiver of authorization on record.",
        "basis": {"kind": "none_on_record", "reference": ""},
        "break_glass": False,
        "audit_sequence": history.disclosed[1].sequence,
    }
    assert second["audit_sequence"] == history.disclosed[2].sequence
    assert second["purpose"] == "genomic"
    assert second["break_glass"] is True
    assert second["description"].startswith("Read of an observation about the participant")
    assert "break-glass" in second["description"]


def test_denied_accesses_operations_old_events_and_other_participants_are_not_disclosures(
    history: History, signed_in: Callable[[str], APIClient]
) -> None:
    with schema_context("alpha"):
        mentioned = chained_events().filter(participant_pseudonyms__contains=[history.participant.pseudonym])
        assert mentioned.count() == 7

    disclosures = signed_in("compliance_officer").get(url(history.participant)).json()["disclosures"]

    assert [entry["audit_sequence"] for entry in disclosures] == [event.sequence for event in history.disclosed]
    assert {entry["purpose"] for entry in disclosures}.isdisjoint({"operations"})


def test_asking_for_the_accounting_is_not_itself_a_disclosure(
    history: History, signed_in: Callable[[str], APIClient]
) -> None:
    client = signed_in("compliance_officer")

    first, again = client.get(url(history.participant)), client.get(url(history.participant))

    assert first.json()["disclosures"] == again.json()["disclosures"]
    with schema_context("alpha"):
        asked = chained_events().filter(action="disclosure.read").order_by("sequence")
        assert [event.participant_pseudonyms for event in asked] == [[history.participant.pseudonym]] * 2


def test_the_accounting_is_empty_for_a_participant_never_disclosed(
    alpha: Community, signed_in: Callable[[str], APIClient]
) -> None:
    body = signed_in("compliance_officer").get(url(ParticipantFactory.create(community=alpha))).json()

    assert body["count"] == 0
    assert body["disclosures"] == []


def test_the_csv_form_needs_a_recent_second_factor(history: History, signed_in: Callable[[str], APIClient]) -> None:
    response = signed_in("compliance_officer").get(url(history.participant), {"format": "csv"})

    assert response.status_code == 403
    assert response.json()["code"] == "mfa_required"
    assert history.participant.pseudonym.encode() not in response.content


def test_the_csv_form_is_text_csv_with_a_header_row(history: History, stepped_up: APIClient) -> None:
    response = stepped_up.get(url(history.participant), {"format": "csv"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert history.participant.pseudonym in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.getvalue().decode())))
    assert rows[0] == CSV_HEADER
    assert [row[1] for row in rows[1:]] == [history.recipient.email] * 3
    assert [row[2:5] for row in rows[1:]] == [
        ["Grace Hopper", "Partner University Hospital", "1 College Street, Springfield"]
    ] * 3
    assert [row[6] for row in rows[1:]] == ["external"] * 3
    assert [row[11] for row in rows[1:]] == ["none_on_record", "none_on_record", "emergency"]
    assert rows[3][10].endswith("Basis: emergency (break-glass) access, without consent.")
    assert [row[13] for row in rows[1:]] == [str(event.sequence) for event in history.disclosed]


def test_a_csv_cell_that_a_spreadsheet_would_run_as_a_formula_is_defused(
    alpha: Community, member: Callable[..., User], stepped_up: APIClient
) -> None:
    participant = ParticipantFactory.create(community=alpha)
    disclose(
        participant,
        member(alpha, "principal_investigator", email="=cmd@example.org", full_name="+SUM(A1)", organisation="@x"),
    )

    rows = list(csv.reader(io.StringIO(stepped_up.get(url(participant), {"format": "csv"}).getvalue().decode())))

    assert rows[1][1:4] == ["'=cmd@example.org", "'+SUM(A1)", "'@x"]


def test_an_unknown_participant_is_a_404(alpha: Community, signed_in: Callable[[str], APIClient]) -> None:
    response = signed_in("compliance_officer").get(url(uuid.uuid4()))

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_participant_of_beta_is_not_found_on_alpha(
    alpha: Community,
    beta: Community,
    member: Callable[..., User],
    client_for: Callable[[str], APIClient],
    signed_in: Callable[[str], APIClient],
) -> None:
    theirs = ParticipantFactory.create(community=beta)
    beta_officer = bearer(client_for(BETA_HOST), token_for(member(beta, "compliance_officer"), beta))
    assert beta_officer.get(url(theirs)).status_code == 200

    response = signed_in("compliance_officer").get(url(theirs))

    assert response.status_code == 404
    assert theirs.pseudonym.encode() not in response.content


def test_an_alpha_participant_is_not_found_on_beta(
    history: History,
    beta: Community,
    member: Callable[..., User],
    client_for: Callable[[str], APIClient],
) -> None:
    beta_officer = bearer(client_for(BETA_HOST), token_for(member(beta, "compliance_officer"), beta))

    response = beta_officer.get(url(history.participant))

    assert response.status_code == 404
    assert history.participant.pseudonym.encode() not in response.content


@pytest.mark.parametrize("role", ["researcher", "auditor", "principal_investigator"])
def test_roles_without_disclosure_read_cannot_tell_the_participant_exists(
    role: str, history: History, signed_in: Callable[[str], APIClient]
) -> None:
    response = signed_in(role).get(url(history.participant))

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert history.participant.pseudonym.encode() not in response.content
