"""Refresh-token rotation, reuse detection, logout, and the idle and absolute session lifetimes."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from security.models import AuthSession, RefreshToken, User
from tenants.models import Community
from tests.support.audit import chained_events
from tests.support.clients import ALPHA_HOST, BETA_HOST, bearer

REFRESH_URL = "/api/v1/auth/refresh"


@pytest.fixture
def session(alpha: Community, member: Callable[..., User], login: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return login(ALPHA_HOST, member(alpha, "coordinator"))


def refresh(client: APIClient, token: str) -> Any:
    return client.post(REFRESH_URL, {"refresh": token}, format="json")


def test_a_refresh_token_rotates_on_every_use(session: dict[str, Any], client_for: Callable[[str], APIClient]) -> None:
    response = refresh(client_for(ALPHA_HOST), session["refresh"])

    assert response.status_code == 200
    renewed = response.json()
    assert renewed["refresh"] != session["refresh"]
    assert renewed["access"] != session["access"]
    assert bearer(client_for(ALPHA_HOST), renewed["access"]).get("/api/v1/me").status_code == 200
    first, second = RefreshToken.objects.order_by("created_at")
    assert first.used_at is not None
    assert second.parent_id == first.pk
    assert second.session_id == first.session_id
    assert second.used_at is None


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(
    session: dict[str, Any], client_for: Callable[[str], APIClient]
) -> None:
    client = client_for(ALPHA_HOST)
    renewed = refresh(client, session["refresh"]).json()

    reuse = refresh(client, session["refresh"])

    assert reuse.status_code == 401
    assert reuse.json()["code"] == "invalid_token"
    # The thief's and the owner's newer tokens die with it.
    assert refresh(client, renewed["refresh"]).status_code == 401
    assert bearer(client_for(ALPHA_HOST), renewed["access"]).get("/api/v1/me").status_code == 401
    assert bearer(client_for(ALPHA_HOST), session["access"]).get("/api/v1/me").status_code == 401
    assert AuthSession.objects.get().revoked_at is not None


def test_a_refresh_token_does_not_work_on_another_communitys_host(
    session: dict[str, Any], client_for: Callable[[str], APIClient], beta: Community
) -> None:
    assert refresh(client_for(BETA_HOST), session["refresh"]).status_code == 401
    # ...and that attempt did not burn it.
    assert refresh(client_for(ALPHA_HOST), session["refresh"]).status_code == 200


def test_an_unknown_refresh_token_is_401(alpha: Community, client_for: Callable[[str], APIClient]) -> None:
    assert refresh(client_for(ALPHA_HOST), "rt1.made-up").status_code == 401


def test_a_refresh_token_expires_after_seven_days(
    session: dict[str, Any], client_for: Callable[[str], APIClient]
) -> None:
    assert settings.REFRESH_TOKEN_TTL_SECONDS == 7 * 24 * 3600
    with time_machine.travel(time.time() + settings.REFRESH_TOKEN_TTL_SECONDS + 1):
        assert refresh(client_for(ALPHA_HOST), session["refresh"]).status_code == 401


def test_refresh_stops_when_the_membership_ends(
    session: dict[str, Any], client_for: Callable[[str], APIClient]
) -> None:
    AuthSession.objects.get().user.memberships.all().delete()

    assert refresh(client_for(ALPHA_HOST), session["refresh"]).status_code == 401


def test_logout_revokes_the_access_token_and_the_session_now(
    session: dict[str, Any], client_for: Callable[[str], APIClient]
) -> None:
    client = bearer(client_for(ALPHA_HOST), session["access"])

    assert client.post("/api/v1/auth/logout").status_code == 204

    assert client.get("/api/v1/me").status_code == 401
    assert refresh(client_for(ALPHA_HOST), session["refresh"]).status_code == 401


def test_logout_leaves_other_sessions_alone(
    alpha: Community,
    member: Callable[..., User],
    login: Callable[..., dict[str, Any]],
    client_for: Callable[[str], APIClient],
) -> None:
    user = member(alpha)
    laptop, phone = login(ALPHA_HOST, user), login(ALPHA_HOST, user)

    bearer(client_for(ALPHA_HOST), laptop["access"]).post("/api/v1/auth/logout")

    assert bearer(client_for(ALPHA_HOST), phone["access"]).get("/api/v1/me").status_code == 200


def test_a_refresh_token_of_a_revoked_session_is_refused_however_it_came_to_exist(
    session: dict[str, Any], client_for: Callable[[str], APIClient]
) -> None:
    # The outcome of the race a session lock prevents: a child issued while the
    # session was being revoked. The session row, not the token row, decides.
    bearer(client_for(ALPHA_HOST), session["access"]).post("/api/v1/auth/logout")
    straggler = "rt1.issued-during-logout"
    RefreshToken.objects.create(
        session=AuthSession.objects.get(),
        token_hash=hashlib.sha256(straggler.encode()).hexdigest(),
        expires_at=timezone.now() + timedelta(days=1),
    )

    assert refresh(client_for(ALPHA_HOST), straggler).status_code == 401


def test_each_sign_in_is_its_own_session(
    alpha: Community, member: Callable[..., User], login: Callable[..., dict[str, Any]]
) -> None:
    user = member(alpha)
    login(ALPHA_HOST, user)
    login(ALPHA_HOST, user)

    assert AuthSession.objects.filter(user=user, community=alpha, revoked_at__isnull=True).count() == 2


# --- automatic logoff: idle and absolute lifetimes ------------------------------------

MINUTE = 60
HOUR = 3600


def test_the_session_lifetimes_default_to_twelve_hours_and_half_an_hour_past_an_access_token() -> None:
    assert settings.SESSION_MAX_AGE_SECONDS == 12 * HOUR
    assert settings.SESSION_IDLE_TIMEOUT_SECONDS == settings.ACCESS_TOKEN_TTL_SECONDS + 30 * MINUTE


def test_a_session_refreshed_as_each_access_token_runs_out_lasts_until_its_maximum_age(
    alpha: Community,
    member: Callable[..., User],
    login: Callable[..., dict[str, Any]],
    client_for: Callable[[str], APIClient],
) -> None:
    signed_in = time.time()
    with time_machine.travel(signed_in, tick=False):
        pair = login(ALPHA_HOST, member(alpha, "coordinator"))
    elapsed = 0
    while elapsed + settings.ACCESS_TOKEN_TTL_SECONDS <= settings.SESSION_MAX_AGE_SECONDS:
        elapsed += settings.ACCESS_TOKEN_TTL_SECONDS
        with time_machine.travel(signed_in + elapsed, tick=False):
            response = refresh(client_for(ALPHA_HOST), pair["refresh"])
            assert response.status_code == 200, (elapsed, response.content)
            pair = response.json()

    with time_machine.travel(signed_in + settings.SESSION_MAX_AGE_SECONDS + 1, tick=False):
        ended = refresh(client_for(ALPHA_HOST), pair["refresh"])
        last_access = bearer(client_for(ALPHA_HOST), pair["access"]).get("/api/v1/me")

    assert ended.status_code == 401
    assert ended["Content-Type"] == "application/problem+json"
    assert ended.json()["code"] == "session_expired"
    assert last_access.status_code == 401  # the access token stops at the session's end too
    assert AuthSession.objects.get().revoked_at is not None


def test_a_session_not_refreshed_for_the_idle_timeout_ends_and_stays_ended(
    session: dict[str, Any], client_for: Callable[[str], APIClient]
) -> None:
    with time_machine.travel(time.time() + settings.SESSION_IDLE_TIMEOUT_SECONDS + 1, tick=False):
        idle = refresh(client_for(ALPHA_HOST), session["refresh"])
        again = refresh(client_for(ALPHA_HOST), session["refresh"])

    assert idle.status_code == 401
    assert idle.json()["code"] == "session_idle_timeout"
    assert AuthSession.objects.get().revoked_at is not None  # kept: the refusal did not roll it back
    assert again.status_code == 401
    assert again.json()["code"] == "invalid_token"  # from now on, a revoked session like any other


def test_a_refresh_just_inside_the_idle_timeout_keeps_the_session(
    session: dict[str, Any], client_for: Callable[[str], APIClient]
) -> None:
    with time_machine.travel(time.time() + settings.SESSION_IDLE_TIMEOUT_SECONDS - MINUTE, tick=False):
        response = refresh(client_for(ALPHA_HOST), session["refresh"])

    assert response.status_code == 200
    assert AuthSession.objects.get().revoked_at is None


def test_the_idle_timeout_counts_from_the_last_refresh_not_the_sign_in(
    session: dict[str, Any], client_for: Callable[[str], APIClient]
) -> None:
    start, step = time.time(), settings.SESSION_IDLE_TIMEOUT_SECONDS - MINUTE
    with time_machine.travel(start + step, tick=False):
        renewed = refresh(client_for(ALPHA_HOST), session["refresh"]).json()
    with time_machine.travel(start + 2 * step, tick=False):
        assert refresh(client_for(ALPHA_HOST), renewed["refresh"]).status_code == 200


def test_a_session_that_ended_leaves_a_deny_event_naming_why(
    session: dict[str, Any], client_for: Callable[[str], APIClient]
) -> None:
    with time_machine.travel(time.time() + settings.SESSION_IDLE_TIMEOUT_SECONDS + 1, tick=False):
        refresh(client_for(ALPHA_HOST), session["refresh"])

    with schema_context("alpha"):
        [event] = chained_events().filter(action="auth.refresh")
    assert event.outcome == "deny"
    assert event.http_status == 401
    assert event.reasons == ["session_idle_timeout", "session_revoked"]
    assert event.actor_id == str(AuthSession.objects.get().user_id)


def test_an_ended_session_is_still_refused_on_another_communitys_host(
    session: dict[str, Any], client_for: Callable[[str], APIClient], beta: Community
) -> None:
    with time_machine.travel(time.time() + settings.SESSION_MAX_AGE_SECONDS + 1, tick=False):
        elsewhere = refresh(client_for(BETA_HOST), session["refresh"])

    assert elsewhere.status_code == 401
    assert elsewhere.json()["code"] == "invalid_token"  # beta knows nothing of alpha's sessions
    assert AuthSession.objects.get().revoked_at is None
