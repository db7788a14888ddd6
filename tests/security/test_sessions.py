"""Refresh-token rotation, reuse detection and logout."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from django.conf import settings
from rest_framework.test import APIClient

from security.models import RefreshToken, User
from tenants.models import Community
from tests.conftest import ALPHA_HOST, BETA_HOST, bearer

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
    assert RefreshToken.objects.filter(token_hash__isnull=False).count() == 2
    assert not RefreshToken.objects.filter(used_at__isnull=True, parent__isnull=True).exists()


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
    assert not RefreshToken.objects.filter(revoked_at__isnull=True).exists()


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
    RefreshToken.objects.get().user.memberships.all().delete()

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
