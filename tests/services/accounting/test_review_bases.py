"""The basis of an access is what was on record *then*, and only what an officer could stand behind (review, issue 16).

- A coordinator's ``hipaa_authorization`` flag exempts nothing: a compliance
  officer confirms the authorization (``POST .../consents/{id}/authorization/``,
  a recent second factor), and it counts from that moment, never before.
- A waiver of authorization put on a study later names no earlier read.
- The 50 people of 164.528(b)(4) are people whose PHI was *disclosed under the
  waiver*: workforce uses, authorized reads and emergencies do not count.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from security.models import Affiliation, User
from services.accounting.actions import accounting_request_open, accounting_request_provide
from services.accounting.selectors import accounting_entries
from services.consents.models import Consent
from services.participants.models import Participant
from services.studies.models import Study
from tenants.models import Community
from tests.factories import ConsentFactory, ParticipantFactory, StudyFactory
from tests.support.accounting import listed, read
from tests.support.audit import chained_events
from tests.support.clients import MemberClient

T0 = timezone.now() - datetime.timedelta(days=30)


def at(days: float) -> datetime.datetime:
    return T0 + datetime.timedelta(days=days)


def accounting(participant: Participant, *, include_exempt: bool = False) -> list[dict[str, Any]]:
    with schema_context("alpha"):
        return accounting_entries(participant, include_exempt=include_exempt)


@pytest.fixture
def participant(alpha: Community) -> Participant:
    return ParticipantFactory.create(community=alpha)


@pytest.fixture
def reader(alpha: Community, member: Callable[..., User]) -> User:
    return member(alpha, "principal_investigator", full_name="Alan Turing", organisation="Bletchley Research")


@pytest.fixture
def officer(member_client: MemberClient) -> APIClient:
    return member_client("compliance_officer", second_factor=True)[0]


@pytest.fixture
def coordinator(member_client: MemberClient) -> APIClient:
    return member_client("coordinator")[0]


def flagged(coordinator: APIClient, participant: Participant) -> dict[str, Any]:
    """Given: the coordinator records a consent and ticks ``hipaa_authorization`` (as any coordinator may)."""
    response = coordinator.post(
        f"/api/v1/participants/{participant.pk}/consents/",
        {
            "scopes": ["research_use"],
            "form_version": "AUTH-7",
            "signed_at": at(0).isoformat(),
            "hipaa_authorization": True,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    with schema_context("alpha"):
        Consent.objects.filter(pk=response.json()["id"]).update(created_at=at(0))  # on record since day 0
    return dict(response.json())


def confirm(client: APIClient, participant: Participant, consent_id: Any) -> Any:
    return client.post(f"/api/v1/participants/{participant.pk}/consents/{consent_id}/authorization/", {}, format="json")


# --- 2. an authorization exempts only once a compliance officer has confirmed it ---------------------------


def test_a_coordinators_own_authorization_flag_exempts_no_read_and_shows_as_not_confirmed(
    coordinator: APIClient, officer: APIClient, participant: Participant, reader: User
) -> None:
    """The officer's view (``?include=uses``) labels the read: an authorization no officer confirmed."""
    consent = flagged(coordinator, participant)
    event = read(participant, reader, at(1))

    [entry] = accounting(participant)

    assert entry["audit_sequence"] == event.sequence
    assert entry["category"] == "disclosure"
    assert entry["basis"] == {"kind": "authorization_not_confirmed", "reference": "AUTH-7"}
    assert "no compliance officer had confirmed" in entry["purpose_statement"]
    assert consent["authorization"] == "authorization not confirmed"


def test_after_an_officer_confirms_it_later_reads_are_exempt_and_earlier_ones_are_not(
    coordinator: APIClient, officer: APIClient, participant: Participant, reader: User
) -> None:
    consent = flagged(coordinator, participant)
    earlier = read(participant, reader, at(1))

    confirmed = confirm(officer, participant, consent["id"])
    read(participant, reader, timezone.now())

    assert confirmed.status_code == 200, confirmed.content
    assert confirmed.json()["authorization"] == "confirmed"
    assert datetime.datetime.fromisoformat(confirmed.json()["authorization_confirmed_at"]) > at(1)
    assert [entry["audit_sequence"] for entry in accounting(participant)] == [earlier.sequence]
    kinds = [entry["basis"]["kind"] for entry in accounting(participant, include_exempt=True)]
    assert kinds == ["authorization_not_confirmed", "authorization"]
    with schema_context("alpha"):
        event = chained_events().get(action="consent.authorization_confirm")
    assert event.resource_id == consent["id"]
    assert event.participant_pseudonyms == [participant.pseudonym]


def test_a_confirmation_is_once_and_only_of_an_authorization(
    coordinator: APIClient, officer: APIClient, participant: Participant
) -> None:
    consent = flagged(coordinator, participant)
    with schema_context("alpha"):
        plain = ConsentFactory.create(participant=participant)
    assert confirm(officer, participant, consent["id"]).status_code == 200

    again = confirm(officer, participant, consent["id"])
    not_one = confirm(officer, participant, plain.pk)

    assert (again.status_code, again.json()["code"]) == (409, "authorization_already_confirmed")
    assert (not_one.status_code, not_one.json()["code"]) == (409, "consent_not_an_authorization")


@pytest.mark.parametrize("role", ["owner", "principal_investigator", "coordinator", "researcher", "auditor"])
def test_no_other_role_confirms_an_authorization(
    role: str, member_client: MemberClient, coordinator: APIClient, participant: Participant
) -> None:
    consent = flagged(coordinator, participant)
    client = member_client(role, second_factor=True)[0]

    response = confirm(client, participant, consent["id"])

    assert response.status_code == 404
    with schema_context("alpha"):
        assert Consent.objects.get(pk=consent["id"]).authorization_confirmed_at is None


def test_confirming_needs_a_fresh_second_factor(
    member_client: MemberClient, coordinator: APIClient, participant: Participant
) -> None:
    consent = flagged(coordinator, participant)
    stale = member_client("compliance_officer")[0]

    response = confirm(stale, participant, consent["id"])

    assert (response.status_code, response.json()["code"]) == (403, "mfa_required")


def test_a_consent_of_beta_is_the_same_404_on_alpha_as_a_random_id(
    beta: Community, officer: APIClient, participant: Participant
) -> None:
    theirs = ParticipantFactory.create(community=beta)
    with schema_context("beta"):
        their_consent = ConsentFactory.create(participant=theirs, hipaa_authorization=True)

    cross = confirm(officer, theirs, their_consent.pk)
    cross_consent = confirm(officer, participant, their_consent.pk)
    random = confirm(officer, participant, uuid.uuid4())

    assert cross.status_code == cross_consent.status_code == random.status_code == 404
    assert cross.json()["code"] == cross_consent.json()["code"] == random.json()["code"] == "not_found"
    with schema_context("beta"):
        assert Consent.objects.get(pk=their_consent.pk).authorization_confirmed_at is None


# --- 3. a waiver names only the accesses after it was approved and on record -------------------------------


def test_a_waiver_patched_onto_a_study_after_a_read_does_not_name_that_read(
    member_client: MemberClient, reader: User
) -> None:
    pi = member_client("principal_investigator")[0]
    created = pi.post("/api/v1/studies/", {"title": "Sleep", "protocol_number": "P-WAIVER-LATE"}, format="json")
    assert created.status_code == 201, created.content
    with schema_context("alpha"):
        study = Study.objects.get(pk=created.json()["id"])
        participant = ParticipantFactory.create(study=study)
    before = read(participant, reader, at(1))

    patched = pi.patch(
        f"/api/v1/studies/{study.pk}/",
        {"irb_waiver_number": "WVR-LATE", "irb_waiver_date": "2020-01-01"},
        format="json",
        HTTP_IF_MATCH=created["ETag"],
    )
    after = read(participant, reader, timezone.now())

    assert patched.status_code == 200, patched.content
    assert patched.json()["irb_waiver_recorded_at"] is not None
    bases = {entry["audit_sequence"]: entry["basis"]["kind"] for entry in accounting(participant)}
    assert bases == {before.sequence: "none_on_record", after.sequence: "irb_waiver"}
    with schema_context("alpha"):
        event = chained_events().get(action="study.waiver_record")
    assert (event.resource_id, event.reasons) == (str(study.pk), ["waiver:WVR-LATE"])


def test_a_waiver_names_no_read_before_its_approval_date(alpha: Community, reader: User) -> None:
    study = StudyFactory.create(
        community=alpha,
        irb_waiver_number="WVR-3",
        irb_waiver_date=timezone.localdate(at(2)),
        irb_waiver_recorded_at=at(0),
    )
    participant = ParticipantFactory.create(community=alpha, study=study)
    read(participant, reader, at(1))
    read(participant, reader, at(3))

    assert [entry["basis"]["kind"] for entry in accounting(participant)] == ["none_on_record", "irb_waiver"]


# --- 4. the 50 people of (b)(4) are disclosures under the waiver, not any access ---------------------------


def waived_study(alpha: Community, people: int) -> tuple[Participant, list[Participant]]:
    study = StudyFactory.create(
        community=alpha,
        irb_waiver_number="WVR-50",
        irb_waiver_date=datetime.date(2020, 1, 1),
        irb_waiver_recorded_at=at(-1),
        research_purpose="Sleep",
        phi_types="Diagnoses",
    )
    everyone = [ParticipantFactory.create(community=alpha, study=study) for _ in range(people)]
    return everyone[0], everyone


def provided(participant: Participant) -> dict[str, Any]:
    with schema_context("alpha"):
        request = accounting_request_open(participant=participant, requester="letter", actor_id="operator:test")
        copy = accounting_request_provide(request=request, actor_id="operator:test", research_summaries=True)
    document: dict[str, Any] = orjson.loads(copy.content)
    return document


def test_fifty_participants_listed_by_a_workforce_member_do_not_make_the_waiver_disclosures_summarisable(
    alpha: Community, member: Callable[..., User], reader: User
) -> None:
    target, everyone = waived_study(alpha, 50)
    staff = member(alpha, "coordinator")
    Affiliation.objects.create(user=staff, community=alpha, kind="workforce", valid_from=at(-1), recorded_by="hr")
    listed(everyone, staff, at(1))  # 50 people, but a use by the workforce
    read(target, reader, at(2))  # the one disclosure under the waiver

    document = provided(target)

    assert document["research_summaries"] == []
    [entry] = document["disclosures"]
    assert entry["basis"] == {"kind": "irb_waiver", "reference": "WVR-50"}


def test_emergency_reads_of_fifty_people_do_not_count_towards_the_fifty(alpha: Community, reader: User) -> None:
    target, everyone = waived_study(alpha, 50)
    listed(everyone, reader, at(1), purpose="emergency", break_glass=True)
    read(target, reader, at(2))

    assert provided(target)["research_summaries"] == []


def test_fifty_people_disclosed_under_the_waiver_to_an_external_recipient_are_summarised(
    alpha: Community, reader: User
) -> None:
    target, everyone = waived_study(alpha, 50)
    listed(everyone, reader, at(1))

    document = provided(target)

    assert document["disclosures"] == []
    [summary] = document["research_summaries"]
    assert summary["waiver"]["approval"] == "WVR-50"
