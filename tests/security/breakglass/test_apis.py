"""Break-glass over the API: who may open emergency access, the grant it opens, and its review.

What a grant then lets its holder read is in ``test_selectors.py``; the mail to
the compliance officers in ``test_tasks.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_tenants.utils import schema_context
from pytest_django import DjangoCaptureOnCommitCallbacks
from rest_framework.test import APIClient

from security.audit.models import AuditEvent
from security.breakglass.models import BreakGlassGrant
from security.breakglass.tasks import notify_compliance_officers
from security.models import User
from services.participants.models import Participant
from tenants.models import Community
from tests.factories import MembershipFactory, ParticipantFactory
from tests.support.audit import chained_events
from tests.support.breakglass import (
    BREAK_GLASS,
    EMERGENCY,
    REASON,
    ended_grant_in,
    grant_in,
    probe,
    review_route,
    revoke_route,
)
from tests.support.clients import MemberClient

probe_routes = pytest.mark.urls("tests.policy.probe_urls")


def open_grant(client: APIClient, participant: Participant, **fields: Any) -> Any:
    return client.post(BREAK_GLASS, {"reason": REASON, "participant": str(participant.pk), **fields}, format="json")


# --- opening emergency access --------------------------------------------------------


def test_opening_emergency_access_needs_a_recent_second_factor(
    signed_in: MemberClient, participant: Participant
) -> None:
    client, _ = signed_in("coordinator")

    response = open_grant(client, participant)

    assert response.status_code == 403
    assert response.json()["code"] == "mfa_required"
    with schema_context("alpha"):
        assert not BreakGlassGrant.objects.exists()


@pytest.mark.parametrize("role", ["researcher", "auditor", "compliance_officer"])
def test_a_role_without_break_glass_activate_cannot_open_it_even_with_a_second_factor(
    role: str, signed_in: MemberClient, participant: Participant
) -> None:
    client, _ = signed_in(role, second_factor=True)

    response = open_grant(client, participant)

    assert response.status_code == 403
    assert response.json()["code"] == "action_not_permitted"
    with schema_context("alpha"):
        assert not BreakGlassGrant.objects.exists()


@pytest.mark.parametrize("role", ["coordinator", "principal_investigator"])
def test_a_clinician_role_with_a_fresh_second_factor_opens_a_time_boxed_grant(
    role: str, signed_in: MemberClient, participant: Participant
) -> None:
    client, user = signed_in(role, second_factor=True)

    with time_machine.travel(timezone.now(), tick=False):
        response = open_grant(client, participant, minutes=20)
        opened_at = timezone.now()

    assert response.status_code == 201, response.content
    grant = response.json()
    assert grant["user_id"] == str(user.pk)
    assert (grant["scope"], grant["scope_id"]) == ("participant", str(participant.pk))
    assert grant["reviewed_at"] is None
    with schema_context("alpha"):
        stored = BreakGlassGrant.objects.get(pk=grant["id"])
        [event] = chained_events().filter(action="break_glass.activate")
    assert stored.expires_at == opened_at + timedelta(minutes=20)
    assert (event.outcome, event.actor_id, event.http_status) == ("allow", str(user.pk), 201)
    assert REASON not in " ".join(str(getattr(event, field.attname)) for field in AuditEvent._meta.concrete_fields)


def test_the_activation_event_names_the_grant_it_opened(signed_in: MemberClient, participant: Participant) -> None:
    client, _ = signed_in("coordinator", second_factor=True)

    grant_id = open_grant(client, participant).json()["id"]

    with schema_context("alpha"):
        event = chained_events().get(action="break_glass.activate")
    # grant_open annotates the request's audit record with the grant it opened.
    assert (event.resource_type, event.resource_id) == ("break_glass", grant_id)


def test_a_participant_of_another_community_or_none_at_all_cannot_be_named(
    signed_in: MemberClient, beta: Community
) -> None:
    client, _ = signed_in("coordinator", second_factor=True)
    theirs = ParticipantFactory.create(community=beta)

    for participant_id in (theirs.pk, uuid.uuid4()):
        response = client.post(BREAK_GLASS, {"reason": REASON, "participant": str(participant_id)}, format="json")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    with schema_context("alpha"):
        assert not BreakGlassGrant.objects.exists()
    with schema_context("beta"):
        assert not BreakGlassGrant.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [
        {"minutes": settings.BREAK_GLASS_MAX_MINUTES + 1},
        {"minutes": 0},
        {"reason": "because"},
        {"study": "00000000-0000-0000-0000-000000000000"},
        {"participant": None},
    ],
)
def test_a_request_that_is_not_one_bounded_scope_with_a_reason_is_a_400(
    payload: dict[str, Any], signed_in: MemberClient, participant: Participant
) -> None:
    client, _ = signed_in("coordinator", second_factor=True)
    body = {"reason": REASON, "participant": str(participant.pk), **payload}

    response = client.post(BREAK_GLASS, {key: value for key, value in body.items() if value is not None}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_failed"


def test_the_reason_is_stored_encrypted(
    alpha: Community, member: Callable[..., User], participant: Participant
) -> None:
    grant = grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))

    with connection.cursor() as cursor:
        cursor.execute("SELECT reason::text FROM alpha.breakglass_breakglassgrant WHERE id = %s", [grant.pk])
        [(stored,)] = cursor.fetchall()

    assert stored
    assert "allergy" not in stored
    assert REASON not in stored
    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=grant.pk).reason == REASON


def test_activation_queues_the_notification_once_it_commits(
    signed_in: MemberClient,
    participant: Participant,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, _ = signed_in("coordinator", second_factor=True)
    queued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(notify_compliance_officers, "apply_async", lambda args, **options: queued.append(args))

    with django_capture_on_commit_callbacks(execute=True):
        grant_id = open_grant(client, participant).json()["id"]

    assert queued == [("alpha", grant_id)]


# --- review ----------------------------------------------------------------------------


@pytest.fixture
def grant(alpha: Community, member: Callable[..., User], participant: Participant) -> BreakGlassGrant:
    """A coordinator's grant that has expired: ready for review."""
    return ended_grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))


def test_a_compliance_officer_reviews_a_grant_once(signed_in: MemberClient, grant: BreakGlassGrant) -> None:
    officer, reviewer = signed_in("compliance_officer")
    assert [queued["id"] for queued in officer.get(BREAK_GLASS, {"reviewed": "false"}).json()] == [str(grant.pk)]

    reviewed = officer.post(f"{BREAK_GLASS}{grant.pk}/review/", {"comment": "Justified: ED admission"}, format="json")

    assert reviewed.status_code == 200
    assert reviewed.json()["review_comment"] == "Justified: ED admission"
    assert reviewed.json()["reviewed_by"] == str(reviewer.pk)
    assert reviewed.json()["reviewed_at"] is not None
    assert officer.get(BREAK_GLASS, {"reviewed": "false"}).json() == []
    assert [done["id"] for done in officer.get(BREAK_GLASS, {"reviewed": "true"}).json()] == [str(grant.pk)]

    again = officer.post(f"{BREAK_GLASS}{grant.pk}/review/", {"comment": "Second look"}, format="json")
    assert again.status_code == 409
    assert again.json()["code"] == "already_reviewed"
    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=grant.pk).review_comment == "Justified: ED admission"


def test_the_review_queue_shows_compliance_officers_the_reason_given(
    signed_in: MemberClient, grant: BreakGlassGrant
) -> None:
    officer, _ = signed_in("compliance_officer")

    [queued] = officer.get(BREAK_GLASS, {"reviewed": "false"}).json()

    assert queued["reason"] == REASON


@probe_routes
def test_the_review_queue_shows_what_was_read_under_the_grant(
    signed_in: MemberClient, participant: Participant
) -> None:
    client, user = signed_in("coordinator")
    grant_id = str(grant_in("alpha", user, str(participant.pk)).pk)
    decision_id = client.get(probe(participant), HTTP_X_PURPOSE_OF_USE=EMERGENCY).json()["decision_id"]
    officer, _ = signed_in("compliance_officer")

    [queued] = officer.get(BREAK_GLASS, {"reviewed": "false"}).json()

    assert queued["id"] == grant_id
    with schema_context("alpha"):
        flagged = chained_events().get(decision_id=decision_id)
    assert [use["sequence"] for use in queued["uses"]] == [flagged.sequence]
    assert queued["uses"][0]["resource_id"] == str(participant.pk)


@pytest.mark.parametrize("role", ["auditor", "coordinator", "researcher"])
def test_only_compliance_officers_see_the_queue_and_review(
    role: str, signed_in: MemberClient, grant: BreakGlassGrant
) -> None:
    client, _ = signed_in(role)

    queue = client.get(BREAK_GLASS, {"reviewed": "false"})
    review = client.post(f"{BREAK_GLASS}{grant.pk}/review/", {"comment": "Looks fine"}, format="json")

    assert queue.status_code == 403
    assert REASON not in queue.content.decode()
    # The grant is not theirs to know of: the review route answers as for a missing one.
    assert review.status_code == 404
    assert review.json()["code"] == "not_found"
    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=grant.pk).reviewed_at is None


def test_a_grant_of_beta_cannot_be_reviewed_or_seen_on_alpha(
    signed_in: MemberClient, beta: Community, member: Callable[..., User]
) -> None:
    theirs = ended_grant_in("beta", member(beta, "coordinator"), str(ParticipantFactory.create(community=beta).pk))
    officer, _ = signed_in("compliance_officer")

    response = officer.post(f"{BREAK_GLASS}{theirs.pk}/review/", {"comment": "Looks fine"}, format="json")

    assert response.status_code == 404
    assert officer.get(BREAK_GLASS).json() == []
    with schema_context("beta"):
        assert BreakGlassGrant.objects.get(pk=theirs.pk).reviewed_at is None


@pytest.mark.parametrize("payload", [{}, {"comment": ""}, {"comment": "ok", "reviewed_at": "2020-01-01T00:00:00Z"}])
def test_a_review_needs_a_comment_and_nothing_else(
    payload: dict[str, str], signed_in: MemberClient, grant: BreakGlassGrant
) -> None:
    officer, _ = signed_in("compliance_officer")

    response = officer.post(f"{BREAK_GLASS}{grant.pk}/review/", payload, format="json")

    assert response.status_code == 400
    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=grant.pk).reviewed_at is None


def test_the_queue_filter_accepts_only_true_or_false(signed_in: MemberClient, grant: BreakGlassGrant) -> None:
    officer, _ = signed_in("compliance_officer")

    response = officer.get(BREAK_GLASS, {"reviewed": "maybe"})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_filter"


def test_a_grant_still_active_is_reviewed_only_once_it_has_expired(
    alpha: Community, member: Callable[..., User], signed_in: MemberClient, participant: Participant
) -> None:
    officer, _ = signed_in("compliance_officer")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        active = grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
        early = officer.post(review_route(active), {"comment": "Too early"}, format="json")

    with time_machine.travel(start + timedelta(minutes=31), tick=False):
        late = officer.post(review_route(active), {"comment": "Justified"}, format="json")

    assert early.status_code == 409
    assert early.json()["code"] == "grant_still_active"
    assert late.status_code == 200, late.content


def test_the_holder_of_a_grant_never_reviews_it_even_as_compliance_officer(
    alpha: Community, signed_in: MemberClient, participant: Participant
) -> None:
    client, holder = signed_in("compliance_officer")
    MembershipFactory.create(user=holder, community=alpha, role="coordinator")
    own = ended_grant_in("alpha", holder, str(participant.pk))

    response = client.post(review_route(own), {"comment": "Fine by me"}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "self_review"
    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=own.pk).reviewed_at is None
        [refusal] = chained_events().filter(action="break_glass.review", outcome="deny")
    assert refusal.reasons == ["self_review"]


# --- revocation --------------------------------------------------------------------------


@probe_routes
def test_the_holder_revokes_their_grant_and_it_opens_nothing_from_that_moment(
    signed_in: MemberClient, participant: Participant
) -> None:
    client, holder = signed_in("coordinator")
    grant = grant_in("alpha", holder, str(participant.pk))
    assert client.get(probe(participant), HTTP_X_PURPOSE_OF_USE=EMERGENCY).status_code == 200  # the answer is kept

    with time_machine.travel(timezone.now(), tick=False):
        response = client.post(revoke_route(grant))
        revoked_at = timezone.now()

    assert response.status_code == 200, response.content
    assert response.json()["revoked_by"] == str(holder.pk)
    refused = client.get(probe(participant), HTTP_X_PURPOSE_OF_USE=EMERGENCY)
    assert refused.status_code == 403
    assert refused.json()["code"] == "consent_not_covering_purpose"
    with schema_context("alpha"):
        stored = BreakGlassGrant.objects.get(pk=grant.pk)
        events = list(chained_events().filter(action="break_glass.revoke", resource_id=str(grant.pk)))
    assert (stored.revoked_at, stored.revoked_by) == (revoked_at, holder.pk)
    assert {event.actor_id for event in events} == {str(holder.pk)}
    assert {event.outcome for event in events} == {"allow"}


def test_a_compliance_officer_revokes_someone_elses_grant(
    alpha: Community, member: Callable[..., User], signed_in: MemberClient, participant: Participant
) -> None:
    grant = grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
    officer, reviewer = signed_in("compliance_officer")

    response = officer.post(revoke_route(grant))

    assert response.status_code == 200
    assert response.json()["revoked_by"] == str(reviewer.pk)
    assert officer.post(review_route(grant), {"comment": "Ended early"}, format="json").status_code == 200


def test_a_colleague_cannot_revoke_a_grant_they_do_not_hold(
    alpha: Community, member: Callable[..., User], signed_in: MemberClient, participant: Participant
) -> None:
    grant = grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
    colleague, _ = signed_in("principal_investigator")

    response = colleague.post(revoke_route(grant))

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=grant.pk).revoked_at is None


@pytest.mark.parametrize("role", ["researcher", "auditor", "owner"])
def test_a_role_without_break_glass_revoke_cannot_revoke(
    role: str, alpha: Community, member: Callable[..., User], signed_in: MemberClient, participant: Participant
) -> None:
    grant = grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
    client, _ = signed_in(role)

    response = client.post(revoke_route(grant))

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=grant.pk).revoked_at is None


def test_a_grant_that_has_ended_cannot_be_revoked_again(signed_in: MemberClient, participant: Participant) -> None:
    client, holder = signed_in("coordinator")
    expired = ended_grant_in("alpha", holder, str(participant.pk))
    active = grant_in("alpha", holder, str(participant.pk))
    first = client.post(revoke_route(active))

    again = client.post(revoke_route(active))
    late = client.post(revoke_route(expired))

    assert first.status_code == 200
    assert (again.status_code, again.json()["code"]) == (409, "grant_already_ended")
    assert (late.status_code, late.json()["code"]) == (409, "grant_already_ended")
    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=active.pk).revoked_at == parse_datetime(first.json()["revoked_at"])
        assert BreakGlassGrant.objects.get(pk=expired.pk).revoked_at is None


def test_a_grant_of_beta_cannot_be_revoked_on_alpha(
    signed_in: MemberClient, beta: Community, member: Callable[..., User]
) -> None:
    theirs = grant_in("beta", member(beta, "coordinator"), str(ParticipantFactory.create(community=beta).pk))
    officer, _ = signed_in("compliance_officer")

    response = officer.post(revoke_route(theirs))

    assert response.status_code == 404
    with schema_context("beta"):
        assert BreakGlassGrant.objects.get(pk=theirs.pk).revoked_at is None


def test_the_uses_shown_for_review_end_when_the_grant_was_revoked(
    signed_in: MemberClient, participant: Participant
) -> None:
    client, holder = signed_in("coordinator")
    grant = grant_in("alpha", holder, str(participant.pk))
    client.post(revoke_route(grant))
    with schema_context("alpha"):
        revoked = BreakGlassGrant.objects.get(pk=grant.pk)

    assert revoked.ends_at == revoked.revoked_at
    assert revoked.ends_at is not None
    assert revoked.ends_at < revoked.expires_at
    assert not revoked.is_active(timezone.now())
