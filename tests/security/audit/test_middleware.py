"""Every request on a community's host leaves its audit event, in the same transaction as what it did.

The fault-injection tests make PostgreSQL itself refuse the audit insert (a
trigger in alpha's schema) and show that the client then gets 503 and none of
the data, and that nothing the view wrote was kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from policy.models import DecisionRecord
from security.audit.models import AuditEvent
from security.models import AuthSession, User
from services.participants.models import Participant
from tenants.models import Community
from tests.factories import DEFAULT_PASSWORD, ParticipantFactory
from tests.support.audit import chained_events
from tests.support.clients import ALPHA_HOST, BETA_HOST, MemberClient, bearer
from tests.support.tokens import token_for

EVENTS = "/api/v1/audit/events/"
TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/refresh"
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code", "instance", "request_id"}


def events(**filters: Any) -> list[AuditEvent]:
    """Alpha's audit events matching ``filters``, in sequence order."""
    with schema_context("alpha"):
        return list(chained_events().filter(**filters).order_by("sequence"))


def field_values(event: AuditEvent) -> str:
    """Every stored value of the event, as one text to search."""
    return " ".join(str(getattr(event, field.attname)) for field in AuditEvent._meta.concrete_fields)


def refuse_audit_writes() -> None:
    """From now on (until the test's transaction rolls back) alpha's database refuses every audit event."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION alpha.refuse_audit_event() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'the audit store refuses this write'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_audit_event BEFORE INSERT ON alpha.audit_pendingevent "
            "FOR EACH ROW EXECUTE FUNCTION alpha.refuse_audit_event()"
        )


def accept_audit_writes() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER refuse_audit_event ON alpha.audit_pendingevent")


@pytest.fixture
def signed_in(member_client: MemberClient) -> MemberClient:
    return member_client


@pytest.fixture
def participant(alpha: Community) -> Participant:
    return ParticipantFactory.create(community=alpha)


# --- decisions ---------------------------------------------------------------------


def test_a_denied_request_leaves_a_deny_event_with_its_decision(
    signed_in: Callable[[str], tuple[APIClient, User]],
) -> None:
    client, researcher = signed_in("researcher")

    response = client.get(EVENTS)

    assert response.status_code == 403
    [event] = events(action="audit.read")
    assert event.outcome == "deny"
    assert event.http_status == 403
    assert event.actor_id == str(researcher.pk)
    assert event.actor_roles == ["researcher"]
    assert event.decision_id == response.json()["decision_id"]
    assert event.reasons == ["action_not_permitted"]
    with schema_context("alpha"):
        record = DecisionRecord.objects.get(decision_id=event.decision_id)
    assert record.allow is False
    assert event.policy_revision == record.revision


def test_an_allowed_request_leaves_an_allow_event_with_the_decision_and_policy_revision(
    signed_in: Callable[[str], tuple[APIClient, User]],
) -> None:
    client, auditor = signed_in("auditor")

    assert client.get(EVENTS).status_code == 200

    [event] = events(action="audit.read")
    assert event.outcome == "allow"
    assert event.http_status == 200
    assert event.actor_id == str(auditor.pk)
    assert event.reasons == ["role_grants_action"]
    assert event.decision_id
    assert event.policy_revision
    assert event.request_id
    with schema_context("alpha"):
        record = DecisionRecord.objects.get(decision_id=event.decision_id)
    assert record.allow is True
    assert record.revision == event.policy_revision
    assert record.action == "audit.read"


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic dXNlcjpwYXNz"])
def test_a_request_without_a_valid_token_leaves_a_deny_event(
    authorization: str | None, alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    client = client_for(ALPHA_HOST)
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)

    response = client.get(EVENTS)

    assert response.status_code == 401
    [event] = events()
    assert event.outcome == "deny"
    assert event.http_status == 401
    assert event.actor_id == ""
    assert event.reasons == [response.json()["code"]]
    assert (event.resource_type, event.resource_id) == ("route", "audit-events")


# --- sign-in and refresh -------------------------------------------------------------


def test_a_sign_in_leaves_an_allowed_auth_login_event(
    alpha: Community, member: Callable[..., User], login: Callable[..., dict[str, Any]]
) -> None:
    user = member(alpha, "coordinator")

    login(ALPHA_HOST, user)

    [event] = events(action="auth.login")
    assert event.outcome == "allow"
    assert event.http_status == 200
    assert event.actor_id == str(user.pk)
    assert event.actor_roles == ["coordinator"]
    assert event.resource_type == "session"


@pytest.mark.parametrize("known_email", [True, False])
def test_a_failed_sign_in_leaves_a_deny_event_without_the_credentials(
    known_email: bool, alpha: Community, member: Callable[..., User], client_for: Callable[[str], APIClient]
) -> None:
    user = member(alpha, "coordinator")
    email = user.email if known_email else "stranger@example.org"
    password = "Wrong-Horse-Battery-9"

    response = client_for(ALPHA_HOST).post(TOKEN, {"email": email, "password": password}, format="json")

    assert response.status_code == 401
    [event] = events(action="auth.login")
    assert event.outcome == "deny"
    assert event.reasons == ["invalid_credentials"]
    assert event.actor_id == ""
    stored = field_values(event)
    for secret in (email, email.split("@")[0], password, DEFAULT_PASSWORD):
        assert secret not in stored


@override_settings(LOGIN_MAX_FAILURES_PER_ACCOUNT=2, LOGIN_LOCKOUT_SECONDS=600)
def test_a_locked_out_sign_in_leaves_a_deny_event_that_says_so(
    alpha: Community, member: Callable[..., User], client_for: Callable[[str], APIClient]
) -> None:
    user = member(alpha, "coordinator")
    client = client_for(ALPHA_HOST)
    for _ in range(2):
        client.post(TOKEN, {"email": user.email, "password": "Wrong-Horse-Battery-9"}, format="json")

    locked = client.post(TOKEN, {"email": user.email, "password": DEFAULT_PASSWORD}, format="json")

    assert locked.status_code == 429
    attempts = events(action="auth.login")
    assert [event.reasons for event in attempts] == [["invalid_credentials"], ["invalid_credentials"], ["login_locked"]]
    assert attempts[-1].outcome == "deny"
    assert attempts[-1].http_status == 429
    assert user.email not in field_values(attempts[-1])


def test_refresh_and_refresh_token_reuse_leave_auth_refresh_events(
    alpha: Community,
    member: Callable[..., User],
    login: Callable[..., dict[str, Any]],
    client_for: Callable[[str], APIClient],
) -> None:
    user = member(alpha, "coordinator")
    first = login(ALPHA_HOST, user)["refresh"]
    client = client_for(ALPHA_HOST)

    assert client.post(REFRESH, {"refresh": first}, format="json").status_code == 200
    reuse = client.post(REFRESH, {"refresh": first}, format="json")

    assert reuse.status_code == 401
    rotated, reused = events(action="auth.refresh")
    assert (rotated.outcome, rotated.actor_id) == ("allow", str(user.pk))
    assert reused.outcome == "deny"
    assert reused.actor_id == str(user.pk)
    assert "refresh_token_reused" in reused.reasons
    assert first not in field_values(reused)


# --- fault injection: the audit store refuses the write ---------------------------------


def test_an_access_that_cannot_be_audited_is_not_served_and_leaves_nothing_behind(
    signed_in: Callable[[str], tuple[APIClient, User]], participant: Participant
) -> None:
    client, _ = signed_in("compliance_officer")
    served = client.get(f"/api/v1/participants/{participant.pk}/disclosures/")
    assert served.status_code == 200
    assert served.json()["participant"] == participant.pseudonym  # what the view would return
    with schema_context("alpha"):
        decisions_before = DecisionRecord.objects.count()
    events_before = len(events())
    refuse_audit_writes()

    response = client.get(f"/api/v1/participants/{participant.pk}/disclosures/")

    assert response.status_code == 503
    assert response.json()["code"] == "audit_unavailable"
    assert participant.pseudonym.encode() not in response.content
    assert set(response.json()) == PROBLEM_MEMBERS  # a problem document and nothing of the accounting
    with schema_context("alpha"):
        assert DecisionRecord.objects.count() == decisions_before
    accept_audit_writes()
    assert len(events()) == events_before


def test_who_am_i_is_not_answered_when_it_cannot_be_audited(
    signed_in: Callable[[str], tuple[APIClient, User]],
) -> None:
    client, user = signed_in("researcher")
    refuse_audit_writes()

    response = client.get("/api/v1/me")

    assert response.status_code == 503
    assert response.json()["code"] == "audit_unavailable"
    assert user.email.encode() not in response.content
    assert str(user.pk).encode() not in response.content
    assert set(response.json()) == PROBLEM_MEMBERS
    with schema_context("alpha"):
        assert not DecisionRecord.objects.filter(action="self.read").exists()


def test_a_sign_in_that_cannot_be_audited_issues_no_tokens_and_opens_no_session(
    alpha: Community, member: Callable[..., User], client_for: Callable[[str], APIClient]
) -> None:
    user = member(alpha, "coordinator")
    refuse_audit_writes()

    response = client_for(ALPHA_HOST).post(TOKEN, {"email": user.email, "password": DEFAULT_PASSWORD}, format="json")

    assert response.status_code == 503
    assert response.json()["code"] == "audit_unavailable"
    assert "access" not in response.json()
    assert not AuthSession.objects.filter(user=user).exists()


def test_a_refresh_that_cannot_be_audited_does_not_use_up_the_refresh_token(
    alpha: Community,
    member: Callable[..., User],
    login: Callable[..., dict[str, Any]],
    client_for: Callable[[str], APIClient],
) -> None:
    refresh = login(ALPHA_HOST, member(alpha, "coordinator"))["refresh"]
    client = client_for(ALPHA_HOST)
    refuse_audit_writes()

    refused = client.post(REFRESH, {"refresh": refresh}, format="json")
    accept_audit_writes()
    retried = client.post(REFRESH, {"refresh": refresh}, format="json")

    assert refused.status_code == 503
    assert "refresh" not in refused.json()
    # Had the rotation been kept, this would be reuse of a used token, and the session revoked.
    assert retried.status_code == 200
    assert retried.json()["refresh"] != refresh


def test_the_audit_store_of_another_community_does_not_matter(
    signed_in: Callable[[str], tuple[APIClient, User]],
    beta: Community,
    member: Callable[..., User],
    client_for: Callable[[str], APIClient],
) -> None:
    refuse_audit_writes()  # alpha's only
    beta_user = member(beta, "researcher")

    response = bearer(client_for(BETA_HOST), token_for(beta_user, beta)).get("/api/v1/me")

    assert response.status_code == 200
    assert response.json()["user_id"] == str(beta_user.pk)
    with schema_context("beta"):
        assert chained_events().filter(action="self.read", actor_id=str(beta_user.pk)).exists()


def test_a_look_up_of_a_missing_participant_is_recorded_with_the_id_asked_for(
    signed_in: Callable[[str], tuple[APIClient, User]],
) -> None:
    client, _ = signed_in("compliance_officer")
    missing = uuid.uuid4()

    response = client.get(f"/api/v1/participants/{missing}/disclosures/")

    assert response.status_code == 404
    [event] = events(action="disclosure.read")
    assert event.outcome == "allow"  # the policy allowed the look-up; nothing was found
    assert event.http_status == 404
    assert event.resource_id == str(missing)
    assert event.participant_pseudonyms == []
