"""TOTP enrollment, sign-in with a second factor, recovery codes, and codes that are not ASCII."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

import jwt
import pyotp
import pytest
import time_machine
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from security.identity.mfa import _recovery_hashes as recovery_hashes  # how a recovery code is stored
from security.identity.mfa import verify_second_factor
from security.models import RecoveryCode, TotpDevice, User
from tenants.models import Community
from tests.factories import DEFAULT_PASSWORD
from tests.support.audit import chained_events
from tests.support.clients import ALPHA_HOST, BETA_HOST, bearer
from tests.support.codes import UNICODE_DIGITS

ENROLL_URL = "/api/v1/auth/mfa/totp"
CONFIRM_URL = "/api/v1/auth/mfa/totp/confirm"


@pytest.fixture
def user(alpha: Community, member: Callable[..., User]) -> User:
    return member(alpha, "principal_investigator")


@pytest.fixture
def signed_in(user: User, login: Callable[..., dict[str, Any]], client_for: Callable[[str], APIClient]) -> APIClient:
    return bearer(client_for(ALPHA_HOST), login(ALPHA_HOST, user)["access"])


def seed_of(enrollment: dict[str, Any]) -> str:
    return parse_qs(urlparse(str(enrollment["provisioning_uri"])).query)["secret"][0]


def code_at(seed: str, moment: float) -> str:
    return str(pyotp.TOTP(seed).at(moment))


def enroll(client: APIClient) -> tuple[str, list[str]]:
    enrollment = client.post(ENROLL_URL).json()
    seed = seed_of(enrollment)
    codes = client.post(CONFIRM_URL, {"code": code_at(seed, time.time() - 30)}, format="json").json()
    return seed, codes["recovery_codes"]


def test_enrollment_returns_a_provisioning_uri_and_a_png_qr_code(signed_in: APIClient, user: User) -> None:
    response = signed_in.post(ENROLL_URL)

    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["provisioning_uri"].startswith("otpauth://totp/")
    assert len(seed_of(body)) == 32
    png = base64.b64decode(body["qr_code_png"].removeprefix("data:image/png;base64,"))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # The seed is stored sealed, never as it was given out.
    assert seed_of(body) not in TotpDevice.objects.get(user=user).sealed_secret
    assert not user.mfa_enabled


def test_confirming_with_a_current_code_enables_mfa_and_returns_recovery_codes(
    signed_in: APIClient, user: User
) -> None:
    seed = seed_of(signed_in.post(ENROLL_URL).json())

    response = signed_in.post(CONFIRM_URL, {"code": code_at(seed, time.time())}, format="json")

    assert response.status_code == 200
    codes = response.json()["recovery_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert user.mfa_enabled
    stored = set(RecoveryCode.objects.filter(user=user).values_list("code_hash", flat=True))
    assert not stored & set(codes)
    assert signed_in.get("/api/v1/me").json()["mfa_enabled"] is True


def test_a_wrong_code_does_not_enable_mfa(signed_in: APIClient, user: User) -> None:
    signed_in.post(ENROLL_URL)

    response = signed_in.post(CONFIRM_URL, {"code": "000000"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_otp"
    assert not user.mfa_enabled


def test_confirming_without_enrolling_is_409(signed_in: APIClient) -> None:
    response = signed_in.post(CONFIRM_URL, {"code": "123456"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "mfa_enrollment_not_started"


def test_enrolling_again_once_enabled_is_409(signed_in: APIClient) -> None:
    enroll(signed_in)

    response = signed_in.post(ENROLL_URL)

    assert response.status_code == 409
    assert response.json()["code"] == "mfa_already_enabled"


def test_sign_in_then_needs_the_second_factor_and_amr_says_it_was_used(
    signed_in: APIClient, user: User, client_for: Callable[[str], APIClient]
) -> None:
    seed, _ = enroll(signed_in)
    client = client_for(ALPHA_HOST)
    credentials = {"email": user.email, "password": DEFAULT_PASSWORD}

    without = client.post("/api/v1/auth/token", credentials, format="json")
    assert without.status_code == 401
    assert without.json()["code"] == "mfa_required"

    wrong = client.post("/api/v1/auth/token", {**credentials, "otp": "999999"}, format="json")
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "invalid_credentials"

    before = int(time.time())
    right = client.post("/api/v1/auth/token", {**credentials, "otp": code_at(seed, time.time())}, format="json")
    assert right.status_code == 200
    claims = jwt.decode(right.json()["access"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["auth_time"] >= before


def test_a_totp_code_is_accepted_only_once(
    signed_in: APIClient, user: User, client_for: Callable[[str], APIClient]
) -> None:
    seed, _ = enroll(signed_in)
    code = code_at(seed, time.time())
    credentials = {"email": user.email, "password": DEFAULT_PASSWORD, "otp": code}

    assert client_for(ALPHA_HOST).post("/api/v1/auth/token", credentials, format="json").status_code == 200
    assert client_for(ALPHA_HOST).post("/api/v1/auth/token", credentials, format="json").status_code == 401


def test_a_recovery_code_signs_in_once(
    signed_in: APIClient, user: User, client_for: Callable[[str], APIClient]
) -> None:
    _, recovery_codes = enroll(signed_in)
    credentials = {"email": user.email, "password": DEFAULT_PASSWORD, "otp": recovery_codes[3].lower()}

    first = client_for(ALPHA_HOST).post("/api/v1/auth/token", credentials, format="json")
    second = client_for(ALPHA_HOST).post("/api/v1/auth/token", credentials, format="json")

    assert first.status_code == 200
    assert second.status_code == 401
    assert RecoveryCode.objects.filter(user=user, used_at__isnull=False).count() == 1


def test_mfa_endpoints_refuse_another_communitys_token(
    signed_in: APIClient,
    user: User,
    beta: Community,
    login: Callable[..., dict[str, Any]],
    client_for: Callable[[str], APIClient],
) -> None:
    token = signed_in._credentials["HTTP_AUTHORIZATION"].split()[1]  # type: ignore[attr-defined]
    on_beta = bearer(client_for(BETA_HOST), token)

    assert on_beta.post(ENROLL_URL).status_code == 401
    assert on_beta.post(CONFIRM_URL, {"code": "123456"}, format="json").status_code == 401


def test_enrollment_needs_a_recent_sign_in(signed_in: APIClient) -> None:
    with time_machine.travel(time.time() + 16 * 60):
        response = signed_in.post(ENROLL_URL)

    assert response.status_code == 401
    assert response.json()["code"] == "recent_sign_in_required"
    assert response.json()["max_age"] == 900
    assert 'error="insufficient_user_authentication"' in response["WWW-Authenticate"]


def test_confirmation_needs_a_recent_sign_in_too(signed_in: APIClient) -> None:
    seed = seed_of(signed_in.post(ENROLL_URL).json())

    with time_machine.travel(time.time() + 16 * 60):
        response = signed_in.post(CONFIRM_URL, {"code": code_at(seed, time.time())}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "recent_sign_in_required"


@pytest.mark.parametrize("otp", UNICODE_DIGITS)
def test_unicode_digits_at_sign_in_are_a_wrong_second_factor_on_record(
    otp: str, signed_in: APIClient, user: User, client_for: Callable[[str], APIClient]
) -> None:
    enroll(signed_in)
    credentials = {"email": user.email, "password": DEFAULT_PASSWORD, "otp": otp}

    response = client_for(ALPHA_HOST).post("/api/v1/auth/token", credentials, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    with schema_context("alpha"):
        [refused] = chained_events().filter(action="auth.login", outcome="deny")
    assert refused.reasons == ["invalid_credentials"]
    assert refused.http_status == 401
    assert refused.request_id == response.json()["request_id"]


@pytest.mark.parametrize("code", UNICODE_DIGITS)
def test_unicode_digits_in_the_enrollment_confirmation_are_an_invalid_code(
    code: str, signed_in: APIClient, user: User
) -> None:
    signed_in.post(ENROLL_URL)

    response = signed_in.post(CONFIRM_URL, {"code": code}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_otp"
    assert not TotpDevice.objects.get(user=user).confirmed_at


def test_a_code_that_is_not_ascii_is_never_a_recovery_code(signed_in: APIClient, user: User) -> None:
    enroll(signed_in)
    RecoveryCode.objects.create(user=user, code_hash=recovery_hashes(user, "ABSSD-EFGHJ")[0])
    folded = "ab\u00dfd-efghj"  # 'ß'.upper() is 'SS': without the ASCII rule this was the code above

    assert not verify_second_factor(user=user, otp=folded)
    assert verify_second_factor(user=user, otp="absSd-efghj")  # the code itself, typed loosely, still works
