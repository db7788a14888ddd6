"""Disclosures made off the platform join the accounting; a suspension (164.528(a)(2)) withholds those to its agency.

While a health oversight agency's or law enforcement official's suspension is
in force, an accounting provided leaves out the disclosures to that agency; one
provided after it ends shows them. An oral request suspends for 30 days at most.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import time_machine
from django.db import DatabaseError, transaction
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from core.errors import Conflict
from security.models import User
from services.accounting.actions import accounting_request_open, accounting_request_provide, suspension_record
from services.accounting.models import RecordedDisclosure, Suspension
from services.participants.models import Participant
from tenants.models import Community
from tests.factories import ParticipantFactory
from tests.support.audit import chained_events, recorded
from tests.support.clients import BETA_HOST, MemberClient, bearer
from tests.support.tokens import token_for

AGENCY = "Office of Inspector General"


@pytest.fixture
def officer(member_client: MemberClient) -> APIClient:
    return member_client("compliance_officer", second_factor=True)[0]


@pytest.fixture
def participant(alpha: Community) -> Participant:
    return ParticipantFactory.create(community=alpha)


def record_disclosure(client: APIClient, participant: Participant, **fields: Any) -> Any:
    body = {
        "disclosed_at": (timezone.now() - datetime.timedelta(days=10)).isoformat(),
        "recipient_name": "Agent Smith",
        "recipient_organisation": AGENCY,
        "recipient_address": "330 Independence Ave SW, Washington, DC",
        "description": "Dates of visits and diagnoses",
        "purpose_statement": "To answer a health oversight agency's audit, as the law requires.",
        **fields,
    }
    return client.post(f"/api/v1/participants/{participant.pk}/recorded-disclosures/", body, format="json")


def suspend(client: APIClient, **fields: Any) -> Any:
    body = {
        "agency": AGENCY,
        "official": "Agent Smith",
        "form": "written",
        "statement": "An accounting would be reasonably likely to impede the agency's activities.",
        "starts_at": (timezone.now() - datetime.timedelta(days=1)).isoformat(),
        "ends_at": (timezone.now() + datetime.timedelta(days=90)).isoformat(),
        **fields,
    }
    return client.post("/api/v1/accounting-suspensions/", body, format="json")


def provided_now(participant: Participant) -> list[dict[str, Any]]:
    with schema_context("alpha"):
        request = accounting_request_open(participant=participant, requester="letter", actor_id="operator:test")
        copy = accounting_request_provide(request=request, actor_id="operator:test")
    disclosures: list[dict[str, Any]] = orjson.loads(copy.content)["disclosures"]
    return disclosures


def test_a_disclosure_made_off_the_platform_is_in_the_accounting(officer: APIClient, participant: Participant) -> None:
    made = record_disclosure(officer, participant)

    listed = officer.get(f"/api/v1/participants/{participant.pk}/disclosures/").json()["disclosures"]

    assert made.status_code == 201
    [entry] = listed
    assert entry["source"] == "recorded"
    assert entry["recipient"]["name"] == "Agent Smith"
    assert entry["recipient"]["organisation"] == AGENCY
    assert entry["recipient"]["address"].startswith("330 Independence")
    assert entry["description"] == "Dates of visits and diagnoses"
    assert entry["purpose_statement"].startswith("To answer a health oversight agency's audit")
    with schema_context("alpha"):
        event = chained_events().get(action="accounting.disclosure_record")
    assert event.participant_pseudonyms == [participant.pseudonym]


def test_a_disclosure_cannot_be_recorded_in_the_future(officer: APIClient, participant: Participant) -> None:
    response = record_disclosure(
        officer, participant, disclosed_at=(timezone.now() + datetime.timedelta(days=1)).isoformat()
    )

    assert (response.status_code, response.json()["code"]) == (400, "invalid_period")


def test_a_recorded_disclosure_cannot_be_changed_or_deleted(officer: APIClient, participant: Participant) -> None:
    record_disclosure(officer, participant)

    with schema_context("alpha"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            RecordedDisclosure.objects.update(recipient_name="nobody")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            RecordedDisclosure.objects.all().delete()


def test_an_accounting_provided_during_a_suspension_withholds_the_agencys_disclosures_and_one_after_shows_them(
    officer: APIClient, participant: Participant
) -> None:
    record_disclosure(officer, participant)
    record_disclosure(officer, participant, recipient_name="Registrar", recipient_organisation="State Cancer Registry")
    assert suspend(officer).status_code == 201

    during = provided_now(participant)
    with time_machine.travel(timezone.now() + datetime.timedelta(days=91)):
        after = provided_now(participant)

    assert [entry["recipient"]["organisation"] for entry in during] == ["State Cancer Registry"]
    assert sorted(entry["recipient"]["organisation"] for entry in after) == [AGENCY, "State Cancer Registry"]
    assert "suspen" not in orjson.dumps(during).decode()  # the copy does not tell the individual of the suspension


def test_an_agencys_user_on_the_platform_is_withheld_too(
    alpha: Community, member: Callable[..., User], officer: APIClient, participant: Participant
) -> None:
    agent = member(alpha, "principal_investigator", organisation=AGENCY)
    with schema_context("alpha"):
        recorded(
            actor_id=str(agent.pk),
            actor_roles=["principal_investigator"],
            action="participant.read",
            resource_type="participant",
            resource_id=str(participant.pk),
            participant_pseudonyms=[participant.pseudonym],
            purpose="research_use",
            outcome="allow",
            decision_id=uuid.uuid4().hex,
        )
    suspend(officer)

    assert provided_now(participant) == []


def test_an_oral_suspension_lasts_thirty_days_at_most(officer: APIClient) -> None:
    start = timezone.now()

    long_oral = suspend(
        officer, form="oral", starts_at=start.isoformat(), ends_at=(start + datetime.timedelta(days=31)).isoformat()
    )
    oral = suspend(
        officer, form="oral", starts_at=start.isoformat(), ends_at=(start + datetime.timedelta(days=30)).isoformat()
    )
    backwards = suspend(officer, starts_at=start.isoformat(), ends_at=(start - datetime.timedelta(days=1)).isoformat())

    assert (long_oral.status_code, long_oral.json()["code"]) == (400, "oral_suspension_too_long")
    assert oral.status_code == 201
    assert (backwards.status_code, backwards.json()["code"]) == (400, "invalid_period")
    listed = officer.get("/api/v1/accounting-suspensions/").json()["results"]
    assert [(row["form"], row["agency"]) for row in listed] == [("oral", AGENCY)]
    with schema_context("alpha"):
        assert chained_events().filter(action="accounting.suspension_record").count() == 1
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            Suspension.objects.update(ends_at=start + datetime.timedelta(days=400))


@pytest.mark.parametrize("role", ["owner", "principal_investigator", "coordinator", "researcher", "auditor"])
def test_no_other_role_records_a_disclosure_or_a_suspension(
    role: str, member_client: MemberClient, participant: Participant
) -> None:
    client = member_client(role, second_factor=True)[0]

    recorded_one = record_disclosure(client, participant)
    suspended = suspend(client)

    assert recorded_one.status_code == 404
    assert suspended.status_code == 403
    with schema_context("alpha"):
        assert not RecordedDisclosure.objects.exists()
        assert not Suspension.objects.exists()


def test_a_participant_of_beta_is_the_same_404_on_alpha_as_a_random_id(
    beta: Community, member: Callable[..., User], officer: APIClient, client_for: Callable[..., APIClient]
) -> None:
    theirs = ParticipantFactory.create(community=beta)
    beta_officer = bearer(client_for(BETA_HOST), token_for(member(beta, "compliance_officer"), beta))
    assert beta_officer.get(f"/api/v1/participants/{theirs.pk}/recorded-disclosures/").status_code == 200

    cross = record_disclosure(officer, theirs)
    random = officer.get(f"/api/v1/participants/{uuid.uuid4()}/recorded-disclosures/")
    cross_read = officer.get(f"/api/v1/participants/{theirs.pk}/recorded-disclosures/")

    assert cross.status_code == random.status_code == cross_read.status_code == 404
    assert cross.json()["code"] == random.json()["code"] == "not_found"
    with schema_context("beta"):
        assert not RecordedDisclosure.objects.exists()


# --- review fixes: an oral suspension cannot be stretched ----------------------------------------------------


def test_an_oral_suspension_cannot_start_later_to_stretch_its_thirty_days(officer: APIClient) -> None:
    now = timezone.now()

    later = suspend(
        officer,
        form="oral",
        starts_at=(now + datetime.timedelta(days=20)).isoformat(),
        ends_at=(now + datetime.timedelta(days=50)).isoformat(),
    )

    assert (later.status_code, later.json()["code"]) == (400, "oral_suspension_not_started")
    with schema_context("alpha"):
        assert not Suspension.objects.exists()


def test_an_oral_suspension_ends_at_most_thirty_days_after_it_is_recorded(officer: APIClient) -> None:
    """Said ten days ago: it still ends within 30 days of being put on record, never 30 days after a later start."""
    now = timezone.now()

    too_long = suspend(
        officer,
        form="oral",
        starts_at=(now - datetime.timedelta(days=10)).isoformat(),
        ends_at=(now + datetime.timedelta(days=31)).isoformat(),
    )
    in_time = suspend(
        officer,
        form="oral",
        starts_at=(now - datetime.timedelta(days=10)).isoformat(),
        ends_at=(now + datetime.timedelta(days=29)).isoformat(),
    )

    assert (too_long.status_code, too_long.json()["code"]) == (400, "oral_suspension_too_long")
    assert in_time.status_code == 201


def test_a_second_oral_suspension_for_the_same_agency_is_refused_but_a_written_one_is_recorded(
    officer: APIClient,
) -> None:
    now = timezone.now()
    first = suspend(
        officer, form="oral", starts_at=now.isoformat(), ends_at=(now + datetime.timedelta(days=30)).isoformat()
    )
    assert first.status_code == 201

    with time_machine.travel(now + datetime.timedelta(days=31)), schema_context("alpha"):  # just after it ended
        fields = {"official": "Agent Smith", "statement": "Still impedes.", "actor_id": "operator:test"}
        later = timezone.now()
        with pytest.raises(Conflict) as chained:
            suspension_record(
                agency=AGENCY.upper(),
                form="oral",
                starts_at=later,
                ends_at=later + datetime.timedelta(days=30),
                **fields,
            )
        suspension_record(
            agency=AGENCY, form="written", starts_at=later, ends_at=later + datetime.timedelta(days=90), **fields
        )

    assert chained.value.code == "oral_suspension_repeated"
    with schema_context("alpha"):
        assert sorted(Suspension.objects.values_list("form", flat=True)) == ["oral", "written"]


def test_recording_a_suspension_needs_a_fresh_second_factor(member_client: MemberClient) -> None:
    stale = member_client("compliance_officer")[0]

    response = suspend(stale)

    assert (response.status_code, response.json()["code"]) == (403, "mfa_required")
    with schema_context("alpha"):
        assert not Suspension.objects.exists()


def test_a_register_cut_at_its_limit_says_it_is_truncated(
    officer: APIClient, participant: Participant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.accounting.apis.REGISTER_LIMIT", 2)
    for _ in range(3):
        assert record_disclosure(officer, participant).status_code == 201
    assert suspend(officer).status_code == 201

    cut = officer.get(f"/api/v1/participants/{participant.pk}/recorded-disclosures/").json()
    whole = officer.get("/api/v1/accounting-suspensions/").json()

    assert (len(cut["results"]), cut["truncated"]) == (2, True)
    assert (len(whole["results"]), whole["truncated"]) == (1, False)
