"""What each entry of an accounting says (45 CFR 164.528(b)(2)), and which accesses are left out of it, and why.

Use or disclosure is decided by the recipient's affiliation in force at the
access time; authorization or waiver by the consents and the study as they
stood then. Every rule has its attacker: a member who makes themselves
workforce after the fact, a consent recorded with a backdated signature, a
withdrawn authorization, an emergency read under an authorization.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from security.models import Affiliation, User
from services.accounting.selectors import accounting_entries
from services.consents.models import Consent
from services.participants.models import Participant
from tenants.models import Community
from tests.factories import ConsentFactory, ParticipantFactory, StudyFactory
from tests.support.accounting import read
from tests.support.audit import chained_events
from tests.support.clients import MemberClient

# Every access of these tests happens at a stated time in the past, in order (the chain's times never go back).
T0 = timezone.now() - datetime.timedelta(days=30)


def at(days: float) -> datetime.datetime:
    return T0 + datetime.timedelta(days=days)


def accounting(participant: Participant, *, include_exempt: bool = False) -> list[dict[str, Any]]:
    with schema_context("alpha"):
        return accounting_entries(participant, include_exempt=include_exempt)


def sequences(entries: list[dict[str, Any]]) -> list[int]:
    return [entry["audit_sequence"] for entry in entries]


def workforce_since(user: User, community: Community, when: datetime.datetime, kind: str = "workforce") -> None:
    """Given: an affiliation on record since ``when`` (set by an operator then)."""
    Affiliation.objects.create(user=user, community=community, kind=kind, valid_from=when, recorded_by="operator:hr")


def authorization(participant: Participant, *, since: datetime.datetime, **fields: Any) -> Consent:
    """Given: a consent that is a HIPAA authorization, signed, on record and confirmed by an officer since ``since``."""
    with schema_context("alpha"):
        consent = ConsentFactory.create(
            participant=participant, hipaa_authorization=True, form_version="AUTH-2", signed_at=since, **fields
        )
        Consent.objects.filter(pk=consent.pk).update(
            created_at=since, authorization_confirmed_at=since, authorization_confirmed_by="officer"
        )
        consent.refresh_from_db()
    return consent


@pytest.fixture
def participant(alpha: Community) -> Participant:
    return ParticipantFactory.create(community=alpha)


@pytest.fixture
def reader(alpha: Community, member: Callable[..., User]) -> User:
    return member(alpha, "principal_investigator", full_name="Alan Turing", organisation="Bletchley Research")


# --- use or disclosure: the affiliation at the access time ---------------------------------------


def test_a_read_by_a_member_with_no_affiliation_on_record_is_a_disclosure(
    participant: Participant, reader: User
) -> None:
    event = read(participant, reader, at(1))

    [entry] = accounting(participant)

    assert entry["audit_sequence"] == event.sequence
    assert (entry["category"], entry["recipient"]["affiliation"]) == ("disclosure", "external")
    assert (entry["recipient"]["name"], entry["recipient"]["organisation"]) == ("Alan Turing", "Bletchley Research")


def test_a_workforce_read_is_a_use_left_out_but_shown_to_the_officer_as_a_use(
    alpha: Community, participant: Participant, reader: User
) -> None:
    workforce_since(reader, alpha, at(0))
    read(participant, reader, at(1))

    assert accounting(participant) == []
    [use] = accounting(participant, include_exempt=True)
    assert (use["category"], use["recipient"]["affiliation"]) == ("workforce_use", "workforce")


def test_making_oneself_workforce_afterwards_hides_no_earlier_read(
    alpha: Community, participant: Participant, reader: User
) -> None:
    earlier = read(participant, reader, at(1))

    call_command("set_affiliation", community="alpha", email=reader.email, affiliation="workforce", operator="hr")

    assert sequences(accounting(participant)) == [earlier.sequence]
    with schema_context("alpha"):
        change = chained_events().get(action="membership.affiliation")
    assert (change.actor_id, change.resource_id, change.reasons) == ("operator:hr", str(reader.pk), ["to:workforce"])


def test_an_affiliation_change_decides_each_read_by_the_affiliation_then(
    alpha: Community, participant: Participant, reader: User
) -> None:
    workforce_since(reader, alpha, at(0))
    as_staff = read(participant, reader, at(1))
    workforce_since(reader, alpha, at(2), kind="external")
    as_partner = read(participant, reader, at(3))

    assert sequences(accounting(participant)) == [as_partner.sequence]
    assert sequences(accounting(participant, include_exempt=True)) == [as_staff.sequence, as_partner.sequence]


def test_workforce_in_another_community_is_no_workforce_here(
    alpha: Community, beta: Community, participant: Participant, reader: User
) -> None:
    workforce_since(reader, beta, at(0))
    event = read(participant, reader, at(1))

    assert sequences(accounting(participant)) == [event.sequence]


def test_an_unknown_affiliation_kind_is_refused_by_the_command(alpha: Community, reader: User) -> None:
    with pytest.raises(CommandError):
        call_command("set_affiliation", community="alpha", email=reader.email, affiliation="staff", operator="hr")

    assert not Affiliation.objects.filter(user=reader).exists()


# --- authorization, waiver, emergency: the basis at the access time ---------------------------------


def test_a_read_under_an_authorization_covering_the_purpose_is_exempt_and_shown_to_the_officer_as_such(
    participant: Participant, reader: User
) -> None:
    authorization(participant, since=at(0))
    read(participant, reader, at(1))

    assert accounting(participant) == []
    [authorized] = accounting(participant, include_exempt=True)
    assert authorized["category"] == "authorized"
    assert authorized["basis"] == {"kind": "authorization", "reference": "AUTH-2"}
    assert "your signed authorization (form AUTH-2)" in authorized["purpose_statement"]


def test_an_authorization_for_another_purpose_exempts_nothing(participant: Participant, reader: User) -> None:
    authorization(participant, since=at(0))
    event = read(participant, reader, at(1), purpose="genomic")

    assert sequences(accounting(participant)) == [event.sequence]


def test_a_read_after_the_authorization_was_withdrawn_is_listed(participant: Participant, reader: User) -> None:
    authorization(participant, since=at(0), withdrawn_at=at(1))
    event = read(participant, reader, at(2))

    assert sequences(accounting(participant)) == [event.sequence]


def test_a_consent_that_is_no_authorization_exempts_nothing(participant: Participant, reader: User) -> None:
    with schema_context("alpha"):
        ConsentFactory.create(participant=participant, signed_at=at(0))
        Consent.objects.filter(participant=participant).update(created_at=at(0))
    event = read(participant, reader, at(1))

    assert sequences(accounting(participant)) == [event.sequence]


def test_an_authorization_recorded_later_with_a_backdated_signature_exempts_no_earlier_read(
    participant: Participant, reader: User
) -> None:
    event = read(participant, reader, at(1))
    with schema_context("alpha"):
        ConsentFactory.create(participant=participant, hipaa_authorization=True, signed_at=at(0))

    assert sequences(accounting(participant)) == [event.sequence]


def test_a_read_under_an_irb_waiver_is_listed_with_the_waiver_named(alpha: Community, reader: User) -> None:
    study = StudyFactory.create(
        community=alpha,
        irb_waiver_number="WVR-2026-09",
        irb_waiver_date=datetime.date(2026, 1, 5),
        irb_waiver_recorded_at=at(0),
    )
    participant = ParticipantFactory.create(community=alpha, study=study)
    read(participant, reader, at(1))

    [entry] = accounting(participant)

    assert entry["basis"] == {"kind": "irb_waiver", "reference": "WVR-2026-09"}
    assert entry["purpose_statement"] == (
        "To carry out the research study you are enrolled in. Basis: a waiver of authorization by an IRB or "
        f"privacy board (approval WVR-2026-09 of 2026-01-05) for study {study.protocol_number}."
    )


def test_an_emergency_read_is_listed_even_by_the_workforce_under_an_authorization(
    alpha: Community, participant: Participant, reader: User
) -> None:
    workforce_since(reader, alpha, at(0))
    authorization(participant, since=at(0), scopes=["research_use", "contact"])
    event = read(participant, reader, at(1), purpose="emergency", break_glass=True)

    [entry] = accounting(participant)

    assert entry["audit_sequence"] == event.sequence
    assert (entry["category"], entry["basis"]["kind"]) == ("disclosure", "emergency")
    assert entry["purpose_statement"] == (
        "For emergency care or safety, under emergency (break-glass) access. "
        "Basis: emergency (break-glass) access, without consent."
    )


# --- the description: which kind of data was seen ---------------------------------------------------


def test_a_researchers_redacted_read_is_described_as_the_redacted_view(
    alpha: Community, participant: Participant, member: Callable[..., User]
) -> None:
    researcher = member(alpha, "researcher")
    read(participant, researcher, at(1), actor_roles=["researcher"])

    [entry] = accounting(participant)

    assert entry["redacted"] is True
    assert entry["description"].startswith("Read of the participant's record, in the redacted research view")
    assert "given name" in entry["description"]
    assert "identifiers included" not in entry["description"]


def test_a_researcher_who_is_also_investigator_saw_the_identifiers(
    alpha: Community, participant: Participant, reader: User
) -> None:
    read(participant, reader, at(1), actor_roles=["researcher", "principal_investigator"])

    [entry] = accounting(participant)

    assert entry["redacted"] is False
    assert entry["description"] == "Read of the participant's record, identifiers included"


# --- the officer's view over the API -------------------------------------------------------------------


def test_the_officer_asks_for_uses_with_include_uses(
    alpha: Community, participant: Participant, reader: User, member_client: MemberClient
) -> None:
    workforce_since(reader, alpha, at(0))
    read(participant, reader, at(1))
    officer: APIClient = member_client("compliance_officer")[0]
    url = f"/api/v1/participants/{participant.pk}/disclosures/"

    plain, with_uses = officer.get(url), officer.get(url, {"include": "uses"})
    unknown = officer.get(url, {"include": "everything"})

    assert (plain.json()["count"], with_uses.json()["count"]) == (0, 1)
    assert with_uses.json()["disclosures"][0]["category"] == "workforce_use"
    assert (unknown.status_code, unknown.json()["code"]) == (400, "invalid_include")


def test_a_studys_waiver_and_research_contacts_are_set_over_the_api(member_client: MemberClient) -> None:
    pi: APIClient = member_client("principal_investigator")[0]

    response = pi.post(
        "/api/v1/studies/",
        {
            "title": "Registry",
            "protocol_number": "REG-1",
            "irb_waiver_number": "WVR-1",
            "irb_waiver_date": "2025-03-01",
            "sponsor_name": "Acme Pharma",
            "researcher_phone": "+1 217 555 0199",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["irb_waiver_number"], body["irb_waiver_date"]) == ("WVR-1", "2025-03-01")
    assert (body["sponsor_name"], body["researcher_phone"], body["phi_types"]) == ("Acme Pharma", "+1 217 555 0199", "")
