"""The register of accounting requests: the 60-day clock and its one extension, providing, and the copy kept.

45 CFR 164.528(c): act within 60 days of receipt; one extension of at most 30
days, with a written reason, the individual told within the first 60 days.
164.528(d): keep the written accounting provided, and the titles of those
responsible, six years. The copy is the exact bytes given out, never changed.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from security.audit.hashing import format_time
from security.models import User
from services.accounting.actions import accounting_request_open
from services.accounting.models import AccountingRequest, ProvidedAccounting
from services.participants.models import Participant
from tenants.models import Community
from tests.factories import AccountingRequestFactory, ParticipantFactory, StudyFactory
from tests.support.accounting import listed, read
from tests.support.audit import chained_events
from tests.support.clients import BETA_HOST, MemberClient, bearer
from tests.support.tokens import MFA_AMR, token_for

T0 = timezone.now() - datetime.timedelta(days=400)


@pytest.fixture
def officer(member_client: MemberClient) -> APIClient:
    """A compliance officer of alpha with a second factor just used."""
    return member_client("compliance_officer", second_factor=True)[0]


@pytest.fixture
def participant(alpha: Community) -> Participant:
    return ParticipantFactory.create(community=alpha)


@pytest.fixture
def reader(alpha: Community, member: Callable[..., User]) -> User:
    return member(alpha, "principal_investigator", full_name="Alan Turing", organisation="Bletchley Research")


def open_request(client: APIClient, participant: Participant, **fields: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/accounting-requests/",
        {"participant": str(participant.pk), "requester": "letter", **fields},
        format="json",
    )
    assert response.status_code == 201, response.content
    return dict(response.json())


def provide(client: APIClient, request: dict[str, Any], **body: Any) -> Any:
    return client.post(f"/api/v1/accounting-requests/{request['id']}/provide/", body, format="json")


# --- the clock ------------------------------------------------------------------------------------------


def test_a_request_is_due_sixty_days_after_its_receipt(officer: APIClient, participant: Participant) -> None:
    received = timezone.now() - datetime.timedelta(days=3)

    opened = open_request(officer, participant, received_at=received.isoformat())

    assert datetime.datetime.fromisoformat(opened["due"]) == received + datetime.timedelta(days=60)
    assert (opened["status"], opened["overdue"], opened["provided"]) == ("open", False, None)
    with schema_context("alpha"):
        event = chained_events().get(action="accounting.request_open")
    assert event.participant_pseudonyms == [participant.pseudonym]
    assert "letter" not in str(event.reasons)


def test_a_request_open_past_its_due_date_shows_as_overdue(officer: APIClient, participant: Participant) -> None:
    open_request(officer, participant, received_at=(timezone.now() - datetime.timedelta(days=61)).isoformat())

    [listed] = officer.get("/api/v1/accounting-requests/", {"status": "open"}).json()["results"]

    assert listed["overdue"] is True


def test_a_request_cannot_be_received_in_the_future(officer: APIClient, participant: Participant) -> None:
    response = officer.post(
        "/api/v1/accounting-requests/",
        {
            "participant": str(participant.pk),
            "requester": "letter",
            "received_at": (timezone.now() + datetime.timedelta(days=1)).isoformat(),
        },
        format="json",
    )

    assert (response.status_code, response.json()["code"]) == (400, "invalid_period")


def test_one_extension_of_at_most_thirty_days_with_its_reason(officer: APIClient, participant: Participant) -> None:
    opened = open_request(officer, participant)
    url = f"/api/v1/accounting-requests/{opened['id']}/extension/"
    body = {"days": 30, "reason": "Records held at a second site", "individual_told_on": str(timezone.localdate())}

    too_long = officer.post(url, {**body, "days": 31}, format="json")
    extended = officer.post(url, body, format="json")
    again = officer.post(url, {**body, "days": 1}, format="json")

    assert too_long.status_code == 400
    assert extended.status_code == 200
    assert datetime.datetime.fromisoformat(extended.json()["due"]) == datetime.datetime.fromisoformat(
        opened["due_at"]
    ) + datetime.timedelta(days=30)
    assert extended.json()["extension_reason"] == "Records held at a second site"
    assert (again.status_code, again.json()["code"]) == (409, "accounting_already_extended")


def test_no_extension_once_the_sixty_days_have_passed(officer: APIClient, participant: Participant) -> None:
    late = open_request(officer, participant, received_at=(timezone.now() - datetime.timedelta(days=61)).isoformat())

    response = officer.post(
        f"/api/v1/accounting-requests/{late['id']}/extension/",
        {"days": 10, "reason": "Too late", "individual_told_on": str(timezone.localdate())},
        format="json",
    )

    assert (response.status_code, response.json()["code"]) == (409, "accounting_extension_too_late")


# --- providing, and the copy kept ----------------------------------------------------------------


def test_providing_keeps_the_copy_given_out_byte_for_byte(
    officer: APIClient, participant: Participant, reader: User
) -> None:
    read(participant, reader, T0)
    opened = open_request(officer, participant)

    given = provide(officer, opened, responsible="Privacy Officer; Research Compliance Office")
    read(participant, reader, T0 + datetime.timedelta(days=1))  # a later disclosure changes nothing kept
    kept = officer.get(f"/api/v1/accounting-requests/{opened['id']}/copy/")

    assert given.status_code == 201
    assert kept.status_code == 200
    assert kept.content == given.content
    assert kept["ETag"] == f'"{hashlib.sha256(given.content).hexdigest()}"'
    document = orjson.loads(given.content)
    assert document["type"] == "accounting-of-disclosures/v1"
    assert document["participant"] == participant.pseudonym
    assert document["responsible"] == "Privacy Officer; Research Compliance Office"
    [entry] = document["disclosures"]
    assert entry["recipient"]["name"] == "Alan Turing"
    shown = officer.get(f"/api/v1/accounting-requests/{opened['id']}/").json()
    assert shown["status"] == "provided"
    assert shown["provided"]["sha256"] == hashlib.sha256(given.content).hexdigest()


def test_the_titles_responsible_default_to_the_setting(
    officer: APIClient, participant: Participant, settings: Any
) -> None:
    settings.ACCOUNTING_RESPONSIBLE = "Chief Privacy Officer"

    document = orjson.loads(provide(officer, open_request(officer, participant)).content)

    assert document["responsible"] == "Chief Privacy Officer"


def test_a_request_is_provided_once(officer: APIClient, participant: Participant) -> None:
    opened = open_request(officer, participant)
    assert provide(officer, opened).status_code == 201

    again = provide(officer, opened)

    assert (again.status_code, again.json()["code"]) == (409, "accounting_request_not_open")


def test_a_copy_of_a_request_not_provided_is_a_409(officer: APIClient, participant: Participant) -> None:
    response = officer.get(f"/api/v1/accounting-requests/{open_request(officer, participant)['id']}/copy/")

    assert (response.status_code, response.json()["code"]) == (409, "accounting_not_provided")


def test_providing_and_reading_the_copy_need_a_fresh_second_factor(
    member_client: MemberClient, participant: Participant
) -> None:
    officer = member_client("compliance_officer")[0]
    opened = open_request(officer, participant)

    refused = provide(officer, opened)
    copy = officer.get(f"/api/v1/accounting-requests/{opened['id']}/copy/")

    assert (refused.status_code, refused.json()["code"]) == (403, "mfa_required")
    assert (copy.status_code, copy.json()["code"]) == (403, "mfa_required")


def test_the_period_the_individual_asked_for_leaves_out_older_disclosures(
    officer: APIClient, participant: Participant, reader: User
) -> None:
    read(participant, reader, T0)
    read(participant, reader, T0 + datetime.timedelta(days=100))
    opened = open_request(officer, participant, period_start=(T0 + datetime.timedelta(days=50)).isoformat())

    document = orjson.loads(provide(officer, opened).content)

    assert len(document["disclosures"]) == 1


def test_providing_an_accounting_is_not_itself_a_disclosure(
    officer: APIClient, participant: Participant, reader: User
) -> None:
    read(participant, reader, T0)
    opened = open_request(officer, participant)
    provide(officer, opened)

    second = open_request(officer, participant)

    assert len(orjson.loads(provide(officer, second).content)["disclosures"]) == 1


def test_repeated_disclosures_to_one_recipient_for_one_purpose_may_be_summarised(
    officer: APIClient, participant: Participant, reader: User
) -> None:
    for day in range(3):
        read(participant, reader, T0 + datetime.timedelta(days=day))
    read(participant, reader, T0 + datetime.timedelta(days=4), purpose="genomic")

    document = orjson.loads(provide(officer, open_request(officer, participant), summarise_repeated=True).content)

    research, genomic = document["disclosures"]
    assert (research["frequency"], genomic["frequency"]) == (3, 1)
    assert research["date"] < research["last_date"]
    assert document["summarised_repeated_disclosures"] is True


def test_the_database_refuses_to_change_or_delete_a_copy(officer: APIClient, participant: Participant) -> None:
    provide(officer, open_request(officer, participant))

    with schema_context("alpha"):
        for attempt in (
            lambda: ProvidedAccounting.objects.update(content="{}"),
            lambda: ProvidedAccounting.objects.all().delete(),
        ):
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
                attempt()


# --- who may, and where --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "principal_investigator", "coordinator", "researcher", "auditor"])
def test_no_other_role_opens_or_sees_a_request(
    role: str, alpha: Community, member_client: MemberClient, participant: Participant
) -> None:
    client = member_client(role, second_factor=True)[0]
    existing = AccountingRequestFactory.create(community=alpha, participant=participant)

    opened = client.post(
        "/api/v1/accounting-requests/", {"participant": str(participant.pk), "requester": "x"}, format="json"
    )
    seen = client.get(f"/api/v1/accounting-requests/{existing.pk}/")
    provided = client.post(f"/api/v1/accounting-requests/{existing.pk}/provide/", {}, format="json")

    assert opened.status_code == 403
    assert (seen.status_code, provided.status_code) == (404, 404)
    with schema_context("alpha"):
        assert AccountingRequest.objects.get(pk=existing.pk).status == "open"


@pytest.mark.parametrize("route", ["", "extension/", "provide/", "copy/"])
def test_a_request_of_beta_is_the_same_404_on_alpha_as_a_random_id(
    route: str, beta: Community, member: Callable[..., User], officer: APIClient, client_for: Callable[..., APIClient]
) -> None:
    theirs = AccountingRequestFactory.create(community=beta, participant=ParticipantFactory.create(community=beta))
    beta_officer = bearer(client_for(BETA_HOST), token_for(member(beta, "compliance_officer"), beta, amr=MFA_AMR))
    assert beta_officer.get(f"/api/v1/accounting-requests/{theirs.pk}/").status_code == 200
    method = officer.get if route in ("", "copy/") else officer.post

    cross = method(f"/api/v1/accounting-requests/{theirs.pk}/{route}")
    random = method(f"/api/v1/accounting-requests/{uuid.uuid4()}/{route}")

    assert cross.status_code == random.status_code == 404
    assert cross.json()["code"] == random.json()["code"] == "not_found"
    with schema_context("beta"):
        assert AccountingRequest.objects.get(pk=theirs.pk).status == "open"


def test_opening_a_request_for_a_participant_of_beta_is_refused(beta: Community, officer: APIClient) -> None:
    theirs = ParticipantFactory.create(community=beta)

    response = officer.post(
        "/api/v1/accounting-requests/", {"participant": str(theirs.pk), "requester": "x"}, format="json"
    )

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["participant"]
    with schema_context("alpha"):
        assert not AccountingRequest.objects.exists()


def test_an_unknown_status_filter_is_a_400(officer: APIClient) -> None:
    response = officer.get("/api/v1/accounting-requests/", {"status": "lost"})

    assert (response.status_code, response.json()["code"]) == (400, "invalid_status")


# --- the same workflow from a shell -------------------------------------------------------------------------


def test_the_command_opens_extends_and_provides_through_the_same_actions(
    alpha: Community, participant: Participant, reader: User, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    read(participant, reader, T0)
    base = ("--community", "alpha", "--operator", "jo")

    call_command("accounting_request", *base, "open", "--participant", str(participant.pk), "--requester", "phone")
    with schema_context("alpha"):
        request = AccountingRequest.objects.get(participant=participant)
    call_command(
        "accounting_request",
        *base,
        "extend",
        "--request",
        str(request.pk),
        "--days",
        "20",
        "--reason",
        "second site",
        "--told-on",
        str(timezone.localdate()),
    )
    output = tmp_path / "accounting.json"
    call_command("accounting_request", *base, "provide", "--request", str(request.pk), "--output", str(output))
    call_command("accounting_request", *base, "list")

    with schema_context("alpha"):
        request.refresh_from_db()
        copy = ProvidedAccounting.objects.get(request=request)
        actions = list(chained_events().filter(actor_id="operator:jo").values_list("action", flat=True))
    assert request.status == "provided"
    assert request.extended_due_at == request.due_at + datetime.timedelta(days=20)
    assert output.read_bytes() == copy.content.encode()
    assert orjson.loads(output.read_bytes())["provided_by"] == "operator:jo"
    assert actions == ["accounting.request_open", "accounting.request_extend", "accounting.provide"]
    assert f"{request.pk} provided" in capsys.readouterr().out


# --- 164.528(b)(4): research under a waiver involving 50 or more people ----------------------------------


def waived_study_with(alpha: Community, people: int) -> tuple[Participant, list[Participant]]:
    study = StudyFactory.create(
        community=alpha,
        irb_waiver_number="WVR-7",
        irb_waiver_date=datetime.date(2025, 6, 1),
        irb_waiver_recorded_at=T0 - datetime.timedelta(days=1),
        research_purpose="Sleep and memory in adults over 60; all patients of the sleep clinic since 2020.",
        phi_types="Diagnoses, sleep study results, dates of visits",
        sponsor_name="Acme Pharma",
        sponsor_address="1 Acme Way, Boston",
        sponsor_phone="+1 617 555 0100",
        researcher_name="Dr. Ada Byron",
        researcher_address="Sleep Clinic, Springfield",
        researcher_phone="+1 217 555 0199",
    )
    everyone = [ParticipantFactory.create(community=alpha, study=study) for _ in range(people)]
    return everyone[0], everyone


def test_research_under_a_waiver_involving_fifty_people_may_be_summarised_per_protocol(
    alpha: Community, officer: APIClient, reader: User
) -> None:
    participant, everyone = waived_study_with(alpha, 50)
    listed(everyone, reader, T0)
    read(participant, reader, T0 + datetime.timedelta(days=1), purpose="emergency", break_glass=True)

    document = orjson.loads(provide(officer, open_request(officer, participant), summarise_research=True).content)

    [emergency] = document["disclosures"]
    assert emergency["basis"]["kind"] == "emergency"
    [summary] = document["research_summaries"]
    assert summary["protocol"].endswith(f"({participant.study.protocol_number})")
    assert summary["purpose_and_selection_criteria"].startswith("Sleep and memory in adults over 60")
    assert summary["phi_types"] == "Diagnoses, sleep study results, dates of visits"
    assert summary["sponsor"] == {"name": "Acme Pharma", "address": "1 Acme Way, Boston", "phone": "+1 617 555 0100"}
    assert summary["researcher"]["phone"] == "+1 217 555 0199"
    assert summary["date_range"]["from"] == summary["date_range"]["to"]
    assert summary["statement"] == (
        "Your protected health information may or may not have been disclosed for this research protocol."
    )


def test_research_involving_fewer_than_fifty_people_is_listed_in_full(
    alpha: Community, officer: APIClient, reader: User
) -> None:
    participant, everyone = waived_study_with(alpha, 49)
    listed(everyone, reader, T0)

    document = orjson.loads(provide(officer, open_request(officer, participant), summarise_research=True).content)

    assert document["research_summaries"] == []
    [entry] = document["disclosures"]
    assert entry["basis"] == {"kind": "irb_waiver", "reference": "WVR-7"}


# --- review fixes: the period, the copy's digest in the chain, the command's input ---------------------------


def test_the_six_years_run_back_from_the_receipt_not_from_the_day_the_accounting_is_provided(
    alpha: Community, officer: APIClient, participant: Participant, reader: User, settings: Any
) -> None:
    """164.528(a)(1): six years before the date of the request; an extension must not shorten the period."""
    received = timezone.now() - datetime.timedelta(days=89)
    lookback = datetime.timedelta(days=settings.DISCLOSURE_LOOKBACK_DAYS)
    read(participant, reader, received - lookback + datetime.timedelta(days=10))
    with schema_context("alpha"):
        request = accounting_request_open(
            participant=participant, requester="letter", received_at=received, actor_id="operator:test"
        )
        AccountingRequest.objects.filter(pk=request.pk).update(  # extended by 30 days, in time, back then
            extended_due_at=request.due_at + datetime.timedelta(days=30), extension_reason="second site"
        )

    document = orjson.loads(provide(officer, {"id": str(request.pk)}).content)

    assert len(document["disclosures"]) == 1
    assert document["period"]["from"] == format_time(received - lookback)


def test_the_provide_event_carries_the_copys_sha256_and_its_entry_count(
    officer: APIClient, participant: Participant, reader: User
) -> None:
    read(participant, reader, T0)
    opened = open_request(officer, participant)

    given = provide(officer, opened)

    with schema_context("alpha"):
        event = chained_events().get(action="accounting.provide", resource_type="accounting_request")
    assert event.reasons == [f"sha256:{hashlib.sha256(given.content).hexdigest()}", "entries:1"]


def test_a_copy_rewritten_in_the_database_no_longer_matches_its_event(
    officer: APIClient, participant: Participant, reader: User
) -> None:
    """An operator with the owner's access disables the triggers and rewrites the copy and its digest."""
    read(participant, reader, T0)
    opened = open_request(officer, participant)
    provide(officer, opened)
    verify = ("accounting_request", "--community", "alpha", "--operator", "jo", "verify", "--request", opened["id"])
    out = io.StringIO()
    call_command(*verify, stdout=out)
    assert "matches its audit event" in out.getvalue()

    with schema_context("alpha"):
        copy = ProvidedAccounting.objects.get(request_id=opened["id"])
        forged = copy.content.replace('"disclosures":[{', '"disclosures":[],"x":[{')
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE accounting_providedaccounting DISABLE TRIGGER USER")  # test-only
            cursor.execute(
                "UPDATE accounting_providedaccounting SET content = %s, sha256 = %s WHERE id = %s",
                [forged, hashlib.sha256(forged.encode()).hexdigest(), copy.pk],
            )
            cursor.execute("ALTER TABLE accounting_providedaccounting ENABLE TRIGGER USER")

    with pytest.raises(CommandError, match="does NOT match its audit event"):
        call_command(*verify)


@pytest.mark.parametrize("verb", ["open", "extend", "provide", "verify"])
def test_the_command_refuses_an_id_that_is_not_a_uuid_without_a_traceback(alpha: Community, verb: str) -> None:
    base = ("accounting_request", "--community", "alpha", "--operator", "jo", verb)
    args = {
        "open": ("--participant", "42", "--requester", "phone"),
        "extend": ("--request", "42", "--days", "5", "--reason", "r", "--told-on", str(timezone.localdate())),
        "provide": ("--request", "42"),
        "verify": ("--request", "42"),
    }[verb]

    with pytest.raises(CommandError, match="not an id"):
        call_command(*base, *args)


@pytest.mark.parametrize(
    ("told_on", "why"),
    [(datetime.timedelta(days=1), "tomorrow"), (datetime.timedelta(days=-4), "before the receipt")],
)
def test_the_individual_cannot_be_told_in_the_future_or_before_the_request(
    officer: APIClient, participant: Participant, told_on: datetime.timedelta, why: str
) -> None:
    received = timezone.now() - datetime.timedelta(days=2)
    opened = open_request(officer, participant, received_at=received.isoformat())

    response = officer.post(
        f"/api/v1/accounting-requests/{opened['id']}/extension/",
        {"days": 10, "reason": "second site", "individual_told_on": str(timezone.localdate() + told_on)},
        format="json",
    )

    assert (response.status_code, response.json()["code"]) == (400, "accounting_invalid_told_on"), why
    assert officer.get(f"/api/v1/accounting-requests/{opened['id']}/").json()["extended_due_at"] is None
