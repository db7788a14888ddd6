"""Attacks on sessions and the answers authentication relies on: stolen refresh tokens, lost revocations,
stale cached callers and second factors that crash the sign-in (review findings 5, 7, 8 and 9)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pyotp
import time_machine
from django.conf import settings
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from core.redis import get_redis
from security.identity.mfa import totp_enrollment_begin, totp_enrollment_confirm
from security.models import AuthSession, User
from security.selectors import MEMBERS, calling_member
from tenants.models import Community
from tests.factories import DEFAULT_PASSWORD
from tests.support.audit import chained_events
from tests.support.clients import ALPHA_HOST, BETA_HOST, bearer
from tests.support.codes import UNICODE_DIGITS

REFRESH = "/api/v1/auth/refresh"
DAY = 24 * 3600


def test_a_stolen_refresh_token_cannot_be_refreshed_forever(
    alpha: Community,
    beta: Community,
    member: Callable[..., User],
    login: Callable[..., dict[str, Any]],
    client_for: Callable[[str], APIClient],
) -> None:
    """Security review finding 5: refresh rotation renewed a 7-day expiry forever, with no idle or absolute cap.

    The thief refreshes every six days (inside the refresh token's own lifetime):
    the first is past the idle timeout and ends the session for good. A thief
    quick enough to beat the idle timeout still meets the absolute lifetime.
    """
    signed_in = time.time()
    with time_machine.travel(signed_in, tick=False):
        stolen = login(ALPHA_HOST, member(alpha, "principal_investigator"))
    assert client_for(BETA_HOST).post(REFRESH, {"refresh": stolen["refresh"]}, format="json").status_code == 401

    answers = []
    for day in range(6, 61, 6):
        with time_machine.travel(signed_in + day * DAY, tick=False):
            answer = client_for(ALPHA_HOST).post(REFRESH, {"refresh": stolen["refresh"]}, format="json")
        answers.append(answer.status_code)
        if answer.status_code == 200:
            stolen = answer.json()

    assert answers == [401] * 10
    assert AuthSession.objects.get().revoked_at is not None

    with time_machine.travel(signed_in, tick=False):
        brisk = login(ALPHA_HOST, member(alpha, "coordinator"))
    step = settings.SESSION_IDLE_TIMEOUT_SECONDS - 60
    elapsed, last = 0, 200
    while last == 200 and elapsed <= 2 * DAY:
        elapsed += step
        with time_machine.travel(signed_in + elapsed, tick=False):
            answer = client_for(ALPHA_HOST).post(REFRESH, {"refresh": brisk["refresh"]}, format="json")
        last = answer.status_code
        brisk = answer.json() if last == 200 else brisk
    assert last == 401
    assert answer.json()["code"] == "session_expired"
    assert elapsed > settings.SESSION_MAX_AGE_SECONDS >= elapsed - step


def test_a_revoked_bearer_comes_back_after_redis_loses_its_keys(
    alpha: Community,
    member: Callable[..., User],
    login: Callable[..., dict[str, Any]],
    client_for: Callable[[str], APIClient],
) -> None:
    """Security review finding 7: revocation lived only in Redis; AuthSession.revoked_at was never read.

    The user logs out; Redis then restarts empty (or fails over, or is flushed).
    The old bearer must stay dead, on its own community's host and elsewhere.
    """
    pair = login(ALPHA_HOST, member(alpha, "coordinator"))
    assert bearer(client_for(ALPHA_HOST), pair["access"]).post("/api/v1/auth/logout").status_code == 204

    get_redis().flushdb()

    assert bearer(client_for(ALPHA_HOST), pair["access"]).get("/api/v1/me").status_code == 401
    assert bearer(client_for(BETA_HOST), pair["access"]).get("/api/v1/me").status_code == 401
    assert client_for(ALPHA_HOST).post(REFRESH, {"refresh": pair["refresh"]}, format="json").status_code == 401


def test_a_stale_member_answer_outlives_the_cache_bound(
    alpha: Community, beta: Community, member: Callable[..., User]
) -> None:
    """Security review finding 8: put renewed the whole hash's EXPIRE, so a busy scope kept stale answers.

    A compromised user is deactivated with a queryset update (no signal, so no
    invalidation). Other callers keep the hash busy; at 40 s the stale "active
    member" answer must no longer be served.
    """
    suspect, bystander = member(alpha, "principal_investigator"), member(beta, "researcher")
    started = time.time()
    with time_machine.travel(started, tick=False):
        assert calling_member(user_id=suspect.pk, community=alpha) is not None
    User.objects.filter(pk=suspect.pk).update(is_active=False)  # an incident responder, in SQL
    with time_machine.travel(started + 25, tick=False):
        assert calling_member(user_id=bystander.pk, community=beta) is not None  # renews the hash

    with time_machine.travel(started + 40, tick=False):
        assert MEMBERS.get("all", f"{alpha.pk}:{suspect.pk}").hit is False
        assert calling_member(user_id=suspect.pk, community=alpha) is None


def test_unicode_digits_in_the_second_factor_do_not_break_sign_in(
    alpha: Community, member: Callable[..., User], client_for: Callable[[str], APIClient]
) -> None:
    """Security review finding 9: '١٢٣٤٥٦'.isdigit() is true, and compare_digest on it raised TypeError.

    Someone holding the password sends Unicode digits as the code: the answer is
    the ordinary failed second factor (401), on record as an auth.login denial,
    never a 500 that rolls the record back.
    """
    user = member(alpha, "principal_investigator")
    seed = totp_enrollment_begin(user=user).provisioning_uri.split("secret=")[1].split("&")[0]
    totp_enrollment_confirm(user=user, code=pyotp.TOTP(seed).at(time.time() - 30))

    answers = [
        client_for(ALPHA_HOST).post(
            "/api/v1/auth/token", {"email": user.email, "password": DEFAULT_PASSWORD, "otp": code}, format="json"
        )
        for code in UNICODE_DIGITS
    ]

    assert [(answer.status_code, answer.json()["code"]) for answer in answers] == [(401, "invalid_credentials")] * 3
    with schema_context("alpha"):
        refused = chained_events().filter(action="auth.login", outcome="deny")
        assert sorted(event.request_id for event in refused) == sorted(a.json()["request_id"] for a in answers)
