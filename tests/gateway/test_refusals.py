"""Refusals made before the policy are audit events: one per client per window, the rest counted, never a 500.

Each refusal the edge or the community middleware makes (and those inside the
request without an event of their own) is recorded in the community's log
when the host serves one, in the platform's otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import OperationalError
from django.test import override_settings
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from core.redis import get_redis
from security.audit.models import AuditEvent
from security.audit.revisions import forget_revisions
from tenants.lifecycle import community_suspend
from tenants.models import Community
from tests.support.clients import ALPHA_HOST, MemberClient
from tests.support.events import last_sequence, log_events, platform_events

PROBE = pytest.mark.urls("tests.policy.probe_urls")
PARTICIPANT = "/api/v1/probe/participants/00000000-0000-4000-8000-000000000000"


def refusals(schema: str, code: str) -> list[AuditEvent]:
    return [event for event in log_events(schema, action="request.refuse") if event.reasons[:1] == [code]]


def test_a_suspended_communitys_refusal_is_an_event_in_its_log(
    alpha: Community, beta: Community, client_for: Callable[[str], APIClient]
) -> None:
    community_suspend(slug="alpha", actor_id="operator:test")

    response = client_for(ALPHA_HOST).get("/api/v1/me", HTTP_USER_AGENT="probe/1")

    assert response.status_code == 403
    [event] = refusals("alpha", "community_suspended")
    assert (event.outcome, event.http_status, event.resource_id) == ("deny", 403, "/api/v1/me")
    assert event.request_id == response["X-Request-ID"]
    assert event.user_agent == "probe/1"
    assert refusals("beta", "community_suspended") == []


@override_settings(REQUIRE_GATEWAY=True, TRUSTED_PROXIES=("10.0.0.0/8",), PROXY_SHARED_SECRET="s" * 32)
def test_a_request_around_the_gateway_is_an_event_in_the_communitys_log(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    assert client_for(ALPHA_HOST).get("/api/v1/me").status_code == 403

    [event] = refusals("alpha", "gateway_required")
    assert event.http_status == 403


def test_a_flood_of_429s_is_one_event_and_the_next_window_carries_the_count(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    client = client_for(ALPHA_HOST)
    with override_settings(RATE_LIMIT_IP_BURST=1, RATE_LIMIT_PER_IP=1):
        statuses = [client.get("/api/v1/me").status_code for _ in range(12)]
        assert statuses.count(429) >= 10
        [first] = refusals("alpha", "rate_limited")
        for key in get_redis().scan_iter("{audit:refusal}:first:*"):  # the window ends
            get_redis().delete(key)
        assert client.get("/api/v1/me").status_code == 429

    assert first.http_status == 429
    later = refusals("alpha", "rate_limited")[1]
    assert later.reasons == ["rate_limited", f"also_refused:{statuses.count(429) - 1}"]


def test_refusals_past_the_ceiling_are_counted_not_written(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    with override_settings(RATE_LIMIT_IP_BURST=1, RATE_LIMIT_PER_IP=1, AUDIT_REFUSAL_MAX_PER_WINDOW=2):
        for address in [f"192.0.2.{n}" for n in range(5)]:
            for _ in range(3):
                client_for(ALPHA_HOST).get("/api/v1/me", REMOTE_ADDR=address)

    assert len(refusals("alpha", "rate_limited")) == 2


def test_a_per_user_429_is_an_event(member_client: MemberClient) -> None:
    client, _ = member_client("researcher")
    with override_settings(RATE_LIMIT_USER_BURST=1, RATE_LIMIT_PER_USER=1):
        statuses = [client.get("/api/v1/me").status_code for _ in range(4)]

    assert 429 in statuses
    [event] = refusals("alpha", "rate_limited")
    assert event.http_status == 429


def test_a_body_too_large_is_an_event(alpha: Community, client_for: Callable[[str], APIClient]) -> None:
    response = client_for(ALPHA_HOST).generic(
        "POST", "/api/v1/auth/token", "{}", content_type="application/json", CONTENT_LENGTH="2000000"
    )

    assert response.status_code == 413
    [event] = refusals("alpha", "payload_too_large")
    assert event.http_status == 413


@PROBE
def test_an_unknown_purpose_is_an_event(member_client: MemberClient) -> None:
    client, _ = member_client("researcher")

    assert client.get(PARTICIPANT, HTTP_X_PURPOSE_OF_USE="curiosity").status_code == 400

    [event] = refusals("alpha", "invalid_purpose")
    assert event.http_status == 400


def test_an_unknown_host_is_an_event_in_the_platform_log(db: None, client_for: Callable[[str], APIClient]) -> None:
    since = last_sequence("public")

    assert client_for("nobody.localhost").get("/api/v1/me").status_code == 404

    [event] = platform_events(sequence__gt=since)
    assert (event.action, event.reasons, event.http_status) == ("request.refuse", ["unknown_community"], 404)


def test_a_denial_the_request_middleware_records_is_not_recorded_twice(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    assert client_for(ALPHA_HOST).get("/api/v1/me").status_code == 401

    assert log_events("alpha", action="request.refuse") == []


def test_a_refusal_stands_when_its_event_cannot_be_written(
    monkeypatch: pytest.MonkeyPatch, alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    community_suspend(slug="alpha", actor_id="operator:test")

    def database_down(**_: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr("security.audit.refusals.audit_append", database_down)

    response = client_for(ALPHA_HOST).get("/api/v1/me")

    assert response.status_code == 403
    assert response.json()["code"] == "community_suspended"


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_without_redis_the_bound_holds_in_process(
    alpha: Community, client_for: Callable[[str], APIClient], limiter_elsewhere: None
) -> None:
    community_suspend(slug="alpha", actor_id="operator:test")
    client = client_for(ALPHA_HOST)

    statuses = [client.get("/api/v1/me", REMOTE_ADDR="198.51.100.7").status_code for _ in range(3)]

    assert statuses == [403] * 3
    assert len(refusals("alpha", "community_suspended")) == 1


@PROBE
def test_the_first_decision_under_a_new_policy_revision_is_one_event(
    member_client: MemberClient, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    forget_revisions()
    client, _ = member_client("researcher")

    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):  # each request commits, as in production
            client.get(PARTICIPANT)
    [event] = log_events("alpha", action="policy.revision_changed")
    revision = event.policy_revision
    with schema_context("alpha"):
        newer = AuditEvent.objects.filter(sequence__gt=event.sequence, policy_revision=revision).exists()

    assert revision
    assert newer  # the decisions that followed carry the same revision
    assert event.reasons == ["from:unknown"]


@PROBE
def test_a_process_that_restarts_does_not_record_the_same_revision_again(
    member_client: MemberClient, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    forget_revisions()
    client, _ = member_client("researcher")
    with django_capture_on_commit_callbacks(execute=True):
        client.get(PARTICIPANT)
    [event] = log_events("alpha", action="policy.revision_changed")
    forget_revisions()  # a new process: nothing in memory, Redis knows the revision

    client.get(PARTICIPANT)

    assert log_events("alpha", action="policy.revision_changed") == [event]


@PROBE
def test_a_revision_change_names_the_previous_revision(member_client: MemberClient) -> None:
    forget_revisions()
    get_redis().set("audit:policy-revision:alpha", "embedded:older")
    client, _ = member_client("researcher")

    client.get(PARTICIPANT)

    [event] = log_events("alpha", action="policy.revision_changed")
    assert event.reasons == ["from:embedded:older"]
