"""The review queue in words: who held a grant, over what, how it ran and ended, and each use, attributed right.

A use belongs to the grant its policy decision was made under (the decision
record keeps the grant id of the input's ``context.break_glass``), not to a
time window of its holder: a use recorded just after the grant expired is
still its use, and a holder's two grants never share one.
"""

from __future__ import annotations

import csv
import io
import shutil
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from policy.models import DecisionRecord
from security.audit.context import grant_reason
from security.audit.models import AuditEvent
from security.breakglass.models import BreakGlassGrant
from security.breakglass.selectors import grant_uses
from security.models import User
from services.participants.models import Participant
from services.studies.models import Study
from tenants.models import Community
from tests.factories import ParticipantFactory
from tests.support.audit import chained_events
from tests.support.breakglass import BREAK_GLASS, EMERGENCY, REASON, ended_grant_in, grant_in, revoke_route
from tests.support.clients import MemberClient


def read(client: APIClient, participant: Participant) -> Any:
    """The holder reads ``participant``'s record in an emergency."""
    return client.get(f"/api/v1/participants/{participant.pk}/", HTTP_X_PURPOSE_OF_USE=EMERGENCY)


def queued(officer: APIClient, grant: BreakGlassGrant) -> dict[str, Any]:
    """The queue's entry for ``grant``, as a compliance officer reads it."""
    response = officer.get(BREAK_GLASS)
    assert response.status_code == 200, response.content
    [entry] = [entry for entry in response.json() if entry["id"] == str(grant.pk)]
    found: dict[str, Any] = entry
    return found


# --- attribution: by the decision's grant, not by a time window --------------------------


def test_a_use_recorded_just_after_the_grant_expired_is_still_its_use(
    signed_in: MemberClient, participant: Participant
) -> None:
    client, holder = signed_in("coordinator")
    grant = grant_in("alpha", holder, str(participant.pk))
    assert read(client, participant).status_code == 200
    # The grant expires after the request was made but before its event entered the chain (the queue chains it).
    with schema_context("alpha"):
        BreakGlassGrant.objects.filter(pk=grant.pk).update(expires_at=timezone.now())
    officer, _ = signed_in("compliance_officer")

    entry = queued(officer, grant)

    with schema_context("alpha"):
        [event] = chained_events().filter(action="participant.read", actor_id=str(holder.pk))
        assert event.occurred_at > BreakGlassGrant.objects.get(pk=grant.pk).expires_at
    assert [use["sequence"] for use in entry["uses"]] == [event.sequence]


def test_a_decision_record_edited_in_the_database_moves_no_use_off_its_grant(
    signed_in: MemberClient, participant: Participant
) -> None:
    client, holder = signed_in("coordinator")
    grant = grant_in("alpha", holder, str(participant.pk))
    assert read(client, participant).status_code == 200
    with schema_context("alpha"):
        chained_events()  # chain what is staged
        [event] = AuditEvent.objects.filter(action="participant.read", actor_id=str(holder.pk))
        record = DecisionRecord.objects.get(decision_id=event.decision_id)
        record.input["context"]["break_glass"]["grant_id"] = str(uuid.uuid4())  # an operator's edit, unchained
        record.save()
    officer, _ = signed_in("compliance_officer")

    entry = queued(officer, grant)

    assert [use["sequence"] for use in entry["uses"]] == [event.sequence]
    assert grant_reason(str(grant.pk)) in event.reasons


def test_a_read_of_the_grants_participant_stated_as_operations_is_a_refused_use(
    signed_in: MemberClient, participant: Participant
) -> None:
    client, holder = signed_in("coordinator")
    grant = grant_in("alpha", holder, str(participant.pk))
    refused = client.get(f"/api/v1/participants/{participant.pk}/", HTTP_X_PURPOSE_OF_USE="operations")
    officer, _ = signed_in("compliance_officer")

    entry = queued(officer, grant)

    assert refused.status_code == 403
    [use] = entry["uses"]
    assert (use["action"], use["outcome"], use["http_status"]) == ("participant.read", "deny", 403)


def test_two_overlapping_grants_of_one_holder_never_share_a_use(
    alpha: Community, signed_in: MemberClient, participant: Participant
) -> None:
    client, holder = signed_in("coordinator")
    other = ParticipantFactory.create(community=alpha)
    older = grant_in("alpha", holder, str(other.pk))
    with schema_context("alpha"):
        BreakGlassGrant.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    newer = grant_in("alpha", holder, str(participant.pk))
    assert read(client, participant).status_code == 200  # under the newer grant, the one the policy was given
    officer, _ = signed_in("compliance_officer")

    older_uses = queued(officer, older)["uses"]
    newer_uses = queued(officer, newer)["uses"]

    assert older_uses == []
    assert [use["participants"] for use in newer_uses] == [[participant.pseudonym]]


def test_a_refused_emergency_read_under_the_grant_is_shown_as_refused(
    alpha: Community, signed_in: MemberClient, participant: Participant
) -> None:
    client, holder = signed_in("coordinator")
    grant = grant_in("alpha", holder, str(participant.pk))
    outside = ParticipantFactory.create(community=alpha)
    assert read(client, outside).status_code == 403  # not what the grant names, and no consent
    officer, _ = signed_in("compliance_officer")

    [use] = queued(officer, grant)["uses"]

    assert (use["outcome"], use["http_status"], use["resource_id"]) == ("deny", 403, str(outside.pk))
    assert "1 use, 1 refused." in queued(officer, grant)["summary"]


def test_another_members_emergency_reads_are_not_the_grants_uses(
    signed_in: MemberClient, participant: Participant
) -> None:
    _, holder = signed_in("coordinator")
    grant = grant_in("alpha", holder, str(participant.pk))
    colleague, _ = signed_in("coordinator")
    read(colleague, participant)
    officer, _ = signed_in("compliance_officer")

    assert queued(officer, grant)["uses"] == []


# --- the words ----------------------------------------------------------------------------------


def test_the_queue_says_who_held_what_how_long_how_it_ended_and_each_use_in_words(
    signed_in: MemberClient, participant: Participant
) -> None:
    client, holder = signed_in("coordinator")
    grant = grant_in("alpha", holder, str(participant.pk))
    read(client, participant)
    officer, reviewer = signed_in("compliance_officer")
    assert officer.post(revoke_route(grant)).status_code == 200

    entry = queued(officer, grant)

    assert entry["holder"] == {"user_id": str(holder.pk), "name": holder.email}
    assert entry["covers"] == f"one participant, {participant.pseudonym}"
    assert entry["ended"]["how"] == "revoked"
    assert entry["ended"]["by"] == {"user_id": str(reviewer.pk), "name": reviewer.email}
    assert entry["minutes"] == 0
    [use] = entry["uses"]
    assert use["description"] == "Read of the participant's record"
    assert (use["participants"], use["outcome"], use["http_status"]) == ([participant.pseudonym], "allow", 200)
    summary = entry["summary"]
    assert summary.startswith(f"{holder.email} opened emergency access to one participant, {participant.pseudonym}")
    assert f"was revoked by {reviewer.email}" in summary
    assert "Compliance officers have not been told." in summary
    assert REASON not in summary


def test_a_holder_with_a_name_is_named_by_it_and_their_email(signed_in: MemberClient, participant: Participant) -> None:
    _, holder = signed_in("coordinator")
    User.objects.filter(pk=holder.pk).update(full_name="Grace Hopper")
    grant = grant_in("alpha", holder, str(participant.pk))
    officer, _ = signed_in("compliance_officer")

    entry = queued(officer, grant)

    assert entry["holder"]["name"] == f"Grace Hopper <{holder.email}>"
    assert entry["summary"].startswith(f"Grace Hopper <{holder.email}> opened emergency access")


def test_an_expired_grant_over_a_study_says_so(
    alpha: Community, member: Callable[..., User], signed_in: MemberClient, participant: Participant
) -> None:
    study_id = str(participant.study_id)
    grant = ended_grant_in("alpha", member(alpha, "principal_investigator"), study_id)
    with schema_context("alpha"):
        BreakGlassGrant.objects.filter(pk=grant.pk).update(scope="study", notified_at=timezone.now())
    officer, _ = signed_in("compliance_officer")

    entry = queued(officer, grant)

    with schema_context("alpha"):
        study = Study.objects.get(pk=study_id)
    assert entry["covers"] == f"the study '{study.title}' (protocol {study.protocol_number})"
    assert entry["ended"] == {"how": "expired", "at": entry["expires_at"], "by": None}
    assert entry["minutes"] == 30
    assert "it ran 30 minutes and expired" in entry["summary"]
    assert entry["summary"].endswith("0 uses, 0 refused. Not reviewed.")
    assert "Compliance officers were told at" in entry["summary"]


def test_a_reviewed_grant_says_who_reviewed_it(
    alpha: Community, member: Callable[..., User], signed_in: MemberClient, participant: Participant
) -> None:
    grant = ended_grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
    officer, reviewer = signed_in("compliance_officer")
    officer.post(f"{BREAK_GLASS}{grant.pk}/review/", {"comment": "Justified"}, format="json")

    summary = queued(officer, grant)["summary"]

    assert f" Reviewed by {reviewer.email} at " in summary
    assert "Justified" not in summary


def test_a_holder_no_longer_a_user_is_named_by_their_id(
    alpha: Community, member: Callable[..., User], signed_in: MemberClient, participant: Participant
) -> None:
    grant = ended_grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
    gone = uuid.uuid4()
    with schema_context("alpha"):
        BreakGlassGrant.objects.filter(pk=grant.pk).update(user_id=gone)
    officer, _ = signed_in("compliance_officer")

    assert queued(officer, grant)["holder"] == {"user_id": str(gone), "name": str(gone)}


def test_the_words_of_each_use_are_the_policy_datas_description(
    tmp_path: Path, signed_in: MemberClient, participant: Participant
) -> None:
    client, holder = signed_in("coordinator")
    grant = grant_in("alpha", holder, str(participant.pk))
    read(client, participant)
    officer, _ = signed_in("compliance_officer")
    policy = tmp_path / "rego"
    shutil.copytree(settings.POLICY_DIR, policy)
    data = orjson.loads((policy / "data.json").read_bytes())
    data["gateway"]["matrix"]["phi_actions"]["participant.read"] = "Opened the participant's chart"
    (policy / "data.json").write_bytes(orjson.dumps(data))

    with override_settings(POLICY_DIR=policy):
        [use] = queued(officer, grant)["uses"]

    assert use["description"] == "Opened the participant's chart"


def test_an_action_that_reveals_no_phi_is_described_by_its_name(
    alpha: Community, signed_in: MemberClient, participant: Participant
) -> None:
    client, holder = signed_in("coordinator")
    grant = grant_in("alpha", holder, str(participant.pk))
    client.get("/api/v1/studies/", HTTP_X_PURPOSE_OF_USE=EMERGENCY)
    officer, _ = signed_in("compliance_officer")

    descriptions = {use["action"]: use["description"] for use in queued(officer, grant)["uses"]}

    assert descriptions == {"study.list": "study.list"}


def test_a_grant_of_beta_is_never_in_alphas_queue_whatever_the_filter(
    beta: Community, member: Callable[..., User], signed_in: MemberClient
) -> None:
    theirs = ended_grant_in("beta", member(beta, "coordinator"), str(ParticipantFactory.create(community=beta).pk))
    officer, _ = signed_in("compliance_officer")

    for query in ({}, {"alarm": "true"}, {"alarm": "false"}, {"reviewed": "false"}):
        response = officer.get(BREAK_GLASS, query)
        assert response.status_code == 200
        assert str(theirs.pk) not in response.content.decode()


# --- the file for the officer's review: ?format=csv ----------------------------------------------


def csv_of(response: Any) -> list[list[str]]:
    assert response.status_code == 200, getattr(response, "content", b"")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


def test_the_review_file_has_a_row_per_use_without_the_reason_or_the_comment(
    alpha: Community, member: Callable[..., User], signed_in: MemberClient, participant: Participant
) -> None:
    client, holder = signed_in("coordinator")
    used = grant_in("alpha", holder, str(participant.pk))
    read(client, participant)
    read(client, participant)
    unused = ended_grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
    officer, _ = signed_in("compliance_officer", second_factor=True)
    officer.post(revoke_route(used))
    officer.post(f"{BREAK_GLASS}{unused.pk}/review/", {"comment": "Spoke to Dr Smith about her"}, format="json")

    response = officer.get(BREAK_GLASS, {"format": "csv"})

    rows = csv_of(response)
    header, body = rows[0], rows[1:]
    assert header[:3] == ["grant_id", "holder", "covers"]
    assert [row[0] for row in body] == [str(used.pk), str(used.pk), str(unused.pk)]  # newest first
    described = {row[header.index("use_description")] for row in body if row[0] == str(used.pk)}
    assert described == {"Read of the participant's record"}
    assert {row[header.index("use_participants")] for row in body if row[0] == str(used.pk)} == {participant.pseudonym}
    assert body[-1][header.index("use_sequence")] == ""  # no uses: one row, its use cells empty
    assert body[0][header.index("covers")] == f"one participant, {participant.pseudonym}"
    text = ",".join(",".join(row) for row in rows)
    assert REASON not in text
    assert "Dr Smith" not in text


def test_the_review_file_needs_a_recent_second_factor(signed_in: MemberClient) -> None:
    officer, _ = signed_in("compliance_officer")

    response = officer.get(BREAK_GLASS, {"format": "csv"})
    head = officer.head(BREAK_GLASS, {"format": "csv"})
    odd = officer.head(BREAK_GLASS, {"format": "xml"})

    assert response.status_code == 403
    assert response.json()["code"] == "mfa_required"
    assert (head.status_code, odd.status_code) == (403, 400)  # HEAD is asked as the same action as GET


@pytest.mark.parametrize("role", ["auditor", "coordinator", "owner"])
def test_the_review_file_is_not_for_other_roles_even_with_a_second_factor(
    role: str, alpha: Community, member: Callable[..., User], signed_in: MemberClient, participant: Participant
) -> None:
    ended_grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
    client, _ = signed_in(role, second_factor=True)

    response = client.get(BREAK_GLASS, {"format": "csv"})

    assert response.status_code == 403
    assert REASON not in response.content.decode()


def test_the_review_file_of_alpha_never_holds_a_grant_of_beta(
    beta: Community, member: Callable[..., User], signed_in: MemberClient
) -> None:
    theirs = ended_grant_in("beta", member(beta, "coordinator"), str(ParticipantFactory.create(community=beta).pk))
    officer, _ = signed_in("compliance_officer", second_factor=True)

    rows = csv_of(officer.get(BREAK_GLASS, {"format": "csv"}))

    assert len(rows) == 1  # the header alone
    assert str(theirs.pk) not in str(rows)


@pytest.mark.parametrize("value", ["xml", "CSV", ""])
def test_an_unknown_format_is_a_400(value: str, signed_in: MemberClient) -> None:
    officer, _ = signed_in("compliance_officer", second_factor=True)

    response = officer.get(BREAK_GLASS, {"format": value})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_format"


def test_the_uses_of_a_page_of_grants_are_read_in_one_query(
    alpha: Community, member: Callable[..., User], participant: Participant
) -> None:
    grants = [grant_in("alpha", member(alpha, "coordinator"), str(participant.pk)) for _ in range(3)]

    with schema_context("alpha"):
        with CaptureQueriesContext(connection) as one:
            grant_uses(grants[:1])
        with CaptureQueriesContext(connection) as page:
            grant_uses(grants)

    def reads(captured: CaptureQueriesContext) -> int:
        return sum("audit_auditevent" in query["sql"] for query in captured.captured_queries)

    assert reads(one) == reads(page) == 1


def test_a_page_of_grants_over_many_participants_names_them_in_one_query_per_kind(
    alpha: Community, member: Callable[..., User], signed_in: MemberClient
) -> None:
    holder = member(alpha, "coordinator")
    for _ in range(2):
        grant_in("alpha", holder, str(ParticipantFactory.create(community=alpha).pk))
    officer, _ = signed_in("compliance_officer")
    with CaptureQueriesContext(connection) as two:
        officer.get(BREAK_GLASS)
    for _ in range(4):
        grant_in("alpha", holder, str(ParticipantFactory.create(community=alpha).pk))

    with CaptureQueriesContext(connection) as six:
        entries = officer.get(BREAK_GLASS).json()

    assert len(entries) == 6
    assert all(entry["covers"].startswith("one participant, ") for entry in entries)
    assert len(six.captured_queries) == len(two.captured_queries)


def test_the_queues_are_oldest_first_so_the_longest_waiting_grant_is_never_cut_off(
    alpha: Community, member: Callable[..., User], signed_in: MemberClient, participant: Participant
) -> None:
    older = ended_grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
    with schema_context("alpha"):
        BreakGlassGrant.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(days=2))
    newer = ended_grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
    officer, _ = signed_in("compliance_officer")

    queue = [entry["id"] for entry in officer.get(BREAK_GLASS, {"reviewed": "false"}).json()]
    everything = [entry["id"] for entry in officer.get(BREAK_GLASS).json()]

    assert queue == [str(older.pk), str(newer.pk)]
    assert everything == [str(newer.pk), str(older.pk)]
