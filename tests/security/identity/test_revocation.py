"""Revocation: Redis answers first, and the database decides whenever Redis holds no answer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from core.redis import get_redis
from security.identity import revocation
from security.models import AuthSession, User
from tenants.models import Community
from tests.support.clients import ALPHA_HOST, bearer
from tests.support.tokens import token_for

ME = "/api/v1/me"


@pytest.fixture
def user(alpha: Community, member: Callable[..., User]) -> User:
    return member(alpha, "coordinator")


def me(client_for: Callable[[str], APIClient], token: str) -> Any:
    return bearer(client_for(ALPHA_HOST), token).get(ME)


def test_a_logged_out_bearer_stays_refused_after_redis_loses_every_key(
    user: User, alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    token = token_for(user, alpha)
    assert bearer(client_for(ALPHA_HOST), token).post("/api/v1/auth/logout").status_code == 204

    get_redis().flushdb()

    assert me(client_for, token).status_code == 401


@override_settings(REVOCATION_LIVE_CACHE_SECONDS=1)
def test_a_revocation_made_only_in_the_database_is_honoured_within_the_live_bound(
    user: User, alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    token = token_for(user, alpha)
    assert me(client_for, token).status_code == 200  # "live" is now kept in Redis, for a second
    AuthSession.objects.update(revoked_at=timezone.now())  # an operator, in SQL: Redis hears nothing

    time.sleep(1.2)  # Redis expires keys on its own clock, which time_machine cannot move

    assert me(client_for, token).status_code == 401


def test_the_live_answer_is_kept_no_longer_than_the_bound(user: User, alpha: Community) -> None:
    session = AuthSession.objects.create(user=user, community=alpha, amr=["pwd"], auth_time=timezone.now())

    assert revocation.is_revoked(token_id="jti", session_id=str(session.pk)) is False

    assert 0 < get_redis().ttl(f"live:sid:{session.pk}") <= settings.REVOCATION_LIVE_CACHE_SECONDS


def test_a_revoked_answer_from_the_database_is_kept_as_long_as_a_token_could_live(user: User, alpha: Community) -> None:
    session = AuthSession.objects.create(
        user=user, community=alpha, amr=["pwd"], auth_time=timezone.now(), revoked_at=timezone.now()
    )

    assert revocation.is_revoked(token_id="jti", session_id=str(session.pk)) is True

    longest_token = settings.ACCESS_TOKEN_TTL_SECONDS + settings.JWT_LEEWAY_SECONDS
    assert settings.REVOCATION_LIVE_CACHE_SECONDS < get_redis().ttl(f"revoked:sid:{session.pk}") <= longest_token


def test_a_revocation_wins_over_a_live_answer_kept_before_it(user: User, alpha: Community) -> None:
    session = AuthSession.objects.create(user=user, community=alpha, amr=["pwd"], auth_time=timezone.now())
    assert revocation.is_revoked(token_id="jti", session_id=str(session.pk)) is False

    revocation.revoke_session(str(session.pk))

    assert revocation.is_revoked(token_id="jti", session_id=str(session.pk)) is True


def test_a_session_id_that_is_no_session_counts_as_revoked(db: None) -> None:
    assert revocation.is_revoked(token_id="jti", session_id="not-a-session") is True


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
@pytest.mark.usefixtures("limiter_elsewhere")
def test_with_redis_down_a_live_session_is_still_refused_with_503(
    user: User, alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    response = me(client_for, token_for(user, alpha))

    assert response.status_code == 503
    assert response.json()["code"] == "revocation_unavailable"
