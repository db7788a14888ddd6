"""Signing in: credentials, membership, lockout per account and per address."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt
import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from security.models import User
from tenants.models import Community
from tests.factories import DEFAULT_PASSWORD
from tests.support.clients import ALPHA_HOST, BETA_HOST, bearer

TOKEN_URL = "/api/v1/auth/token"


def sign_in(client: APIClient, email: str, password: str, **extra: Any) -> Any:
    return client.post(TOKEN_URL, {"email": email, "password": password, **extra}, format="json")


def strip_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "request_id"}


def test_a_member_gets_a_token_pair_bound_to_the_community(
    alpha: Community, member: Callable[..., User], client_for: Callable[[str], APIClient]
) -> None:
    user = member(alpha, "coordinator")

    response = sign_in(client_for(ALPHA_HOST), user.email.upper(), DEFAULT_PASSWORD)

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    claims = jwt.decode(body["access"], options={"verify_signature": False})
    assert claims["community"] == "alpha"
    assert claims["roles"] == ["coordinator"]
    assert claims["amr"] == ["pwd"]
    assert claims["sub"] == str(user.pk)
    me = bearer(client_for(ALPHA_HOST), body["access"]).get("/api/v1/me").json()
    assert me == {
        "user_id": str(user.pk),
        "email": user.email,
        "community": "alpha",
        "roles": ["coordinator"],
        "mfa_enabled": False,
        "amr": ["pwd"],
        "auth_time": claims["auth_time"],
    }


def test_passwords_are_hashed_with_argon2(alpha: Community, member: Callable[..., User]) -> None:
    user = member(alpha)

    assert user.password.startswith("argon2$argon2id$")


def test_a_non_member_gets_the_same_401_as_a_wrong_password(
    alpha: Community, beta: Community, member: Callable[..., User], client_for: Callable[[str], APIClient]
) -> None:
    beta_only = member(beta, "owner")
    alpha_member = member(alpha, "owner")

    not_a_member = sign_in(client_for(ALPHA_HOST), beta_only.email, DEFAULT_PASSWORD)
    wrong_password = sign_in(client_for(ALPHA_HOST), alpha_member.email, "not the password at all")
    unknown_email = sign_in(client_for(ALPHA_HOST), "nobody@example.org", DEFAULT_PASSWORD)

    assert not_a_member.status_code == wrong_password.status_code == unknown_email.status_code == 401
    assert (
        strip_request_id(not_a_member.json())
        == strip_request_id(wrong_password.json())
        == strip_request_id(unknown_email.json())
    )
    assert not_a_member.json()["code"] == "invalid_credentials"


def test_beta_credentials_do_not_work_on_alphas_host_and_vice_versa(
    alpha: Community, beta: Community, member: Callable[..., User], client_for: Callable[[str], APIClient]
) -> None:
    alpha_user, beta_user = member(alpha), member(beta)

    assert sign_in(client_for(ALPHA_HOST), alpha_user.email, DEFAULT_PASSWORD).status_code == 200
    assert sign_in(client_for(BETA_HOST), alpha_user.email, DEFAULT_PASSWORD).status_code == 401
    assert sign_in(client_for(BETA_HOST), beta_user.email, DEFAULT_PASSWORD).status_code == 200
    assert sign_in(client_for(ALPHA_HOST), beta_user.email, DEFAULT_PASSWORD).status_code == 401


def test_unknown_fields_and_missing_fields_are_400_with_field_errors(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    response = client_for(ALPHA_HOST).post(TOKEN_URL, {"email": "a@example.org", "is_staff": True}, format="json")

    assert response.status_code == 400
    fields = {error["field"]: error["code"] for error in response.json()["errors"]}
    assert fields == {"is_staff": "unknown_field"}
    response = client_for(ALPHA_HOST).post(TOKEN_URL, {"email": "a@example.org"}, format="json")
    assert {error["field"] for error in response.json()["errors"]} == {"password"}


@override_settings(LOGIN_MAX_FAILURES_PER_ACCOUNT=3, LOGIN_LOCKOUT_SECONDS=600)
def test_an_account_locks_after_repeated_failures_even_for_the_right_password(
    alpha: Community, member: Callable[..., User], client_for: Callable[[str], APIClient]
) -> None:
    user = member(alpha)
    client = client_for(ALPHA_HOST)
    for _ in range(3):
        assert sign_in(client, user.email, "wrong password guess").status_code == 401

    locked = sign_in(client, user.email, DEFAULT_PASSWORD)

    assert locked.status_code == 429
    assert locked.json()["code"] == "login_locked"
    assert 590 <= int(locked["Retry-After"]) <= 600
    # Another account from the same address is not affected.
    other = member(alpha)
    assert sign_in(client, other.email, DEFAULT_PASSWORD).status_code == 200


@override_settings(LOGIN_MAX_FAILURES_PER_IP=4, LOGIN_MAX_FAILURES_PER_ACCOUNT=100)
def test_an_address_locks_after_failures_spread_over_many_accounts(
    alpha: Community, member: Callable[..., User], client_for: Callable[[str], APIClient]
) -> None:
    client = client_for(ALPHA_HOST)
    for number in range(4):
        assert sign_in(client, f"guess{number}@example.org", "password guess").status_code == 401

    user = member(alpha)
    assert sign_in(client, user.email, DEFAULT_PASSWORD).status_code == 429
    other_address = APIClient(HTTP_HOST=ALPHA_HOST, REMOTE_ADDR="198.51.100.7")
    assert sign_in(other_address, user.email, DEFAULT_PASSWORD).status_code == 200


@override_settings(LOGIN_MAX_FAILURES_PER_ACCOUNT=3)
def test_a_successful_sign_in_clears_the_accounts_failures(
    alpha: Community, member: Callable[..., User], client_for: Callable[[str], APIClient]
) -> None:
    user = member(alpha)
    client = client_for(ALPHA_HOST)
    for _ in range(2):
        sign_in(client, user.email, "wrong password guess")
    assert sign_in(client, user.email, DEFAULT_PASSWORD).status_code == 200
    for _ in range(2):
        sign_in(client, user.email, "wrong password guess")

    assert sign_in(client, user.email, DEFAULT_PASSWORD).status_code == 200


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
@pytest.mark.usefixtures("limiter_elsewhere")
def test_sign_in_fails_closed_when_redis_is_down(
    alpha: Community, member: Callable[..., User], client_for: Callable[[str], APIClient]
) -> None:
    user = member(alpha)

    response = sign_in(client_for(ALPHA_HOST), user.email, DEFAULT_PASSWORD)

    assert response.status_code == 503
    assert response.json()["code"] == "login_unavailable"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_there_is_no_sign_in_on_the_platform_host(host: str, client_for: Callable[[str], APIClient], db: None) -> None:
    response = sign_in(client_for(host), "a@example.org", DEFAULT_PASSWORD)

    assert response.status_code == 404
