"""Admin sign-in on the platform host: password and second factor, under the API's lockout."""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings
from django.urls import clear_url_caches

import config.urls_public
from security.models import User
from tenants.models import Community
from tests.config.test_production_settings import COMPLETE, REPOSITORY
from tests.factories import DEFAULT_PASSWORD
from tests.support.codes import UNICODE_DIGITS

LOGIN_URL = "/admin/login/?next=/admin/"


def enroll(user: User, monkeypatch: pytest.MonkeyPatch) -> str:
    """Enroll through the command, answering its prompt with a valid code; return the seed."""
    first = io.StringIO()
    monkeypatch.setattr("sys.stdin", io.StringIO("not-a-code\n"))
    with pytest.raises(CommandError, match="invalid_otp"):
        call_command("mfa_enroll", "--email", user.email, stdout=first)
    seed = parse_qs(urlparse(first.getvalue().split("authenticator: ")[1].split()[0]).query)["secret"][0]
    out = io.StringIO()
    # Starting again makes a new seed: answer with a code computed from the printed URI.
    monkeypatch.setattr("sys.stdin", _LazyCode(out))
    call_command("mfa_enroll", "--email", user.email, stdout=out)
    assert "Recovery codes" in out.getvalue()
    assert seed != _seed_from(out.getvalue())
    return _seed_from(out.getvalue())


def _seed_from(output: str) -> str:
    uri = output.split("authenticator: ")[1].split(maxsplit=1)[0]
    return parse_qs(urlparse(uri).query)["secret"][0]


class _LazyCode(io.StringIO):
    """Standard input that answers with the current code of the URI printed so far."""

    def __init__(self, printed: io.StringIO) -> None:
        super().__init__()
        self.printed = printed

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        return pyotp.TOTP(_seed_from(self.printed.getvalue())).now() + "\n"


@pytest.fixture
def staff(alpha: Community, member: Callable[..., User]) -> User:
    return member(alpha, "owner", is_staff=True, is_superuser=True)


def sign_in(email: str, password: str, otp: str) -> object:
    client = Client(HTTP_HOST="localhost")
    return client.post(LOGIN_URL, {"username": email, "password": password, "otp": otp})


def test_the_login_page_asks_for_a_one_time_code(db: None) -> None:
    page = Client(HTTP_HOST="localhost").get(LOGIN_URL).content.decode()

    assert 'name="otp"' in page


def test_staff_without_a_second_factor_cannot_sign_in(staff: User) -> None:
    response = sign_in(staff.email, DEFAULT_PASSWORD, "123456")

    assert response.status_code == 200  # type: ignore[attr-defined]
    assert "Please enter the correct" in response.content.decode()  # type: ignore[attr-defined]


def test_staff_with_password_and_code_sign_in(staff: User, monkeypatch: pytest.MonkeyPatch) -> None:
    seed = enroll(staff, monkeypatch)

    response = sign_in(staff.email, DEFAULT_PASSWORD, pyotp.TOTP(seed).at(time.time() + 30))

    assert response.status_code == 302  # type: ignore[attr-defined]
    assert response["Location"] == "/admin/"  # type: ignore[index]
    # Security review finding 17: a staff sign-in ends when an API session would, not after two weeks.
    assert response.cookies["sessionid"]["max-age"] == settings.SESSION_MAX_AGE_SECONDS  # type: ignore[attr-defined]
    assert settings.SESSION_MAX_AGE_SECONDS <= 24 * 3600


@override_settings(LOGIN_MAX_FAILURES_PER_ACCOUNT=3)
def test_wrong_codes_count_as_failures_and_lock_the_account(staff: User, monkeypatch: pytest.MonkeyPatch) -> None:
    seed = enroll(staff, monkeypatch)
    for _ in range(3):
        sign_in(staff.email, DEFAULT_PASSWORD, "000000")

    response = sign_in(staff.email, DEFAULT_PASSWORD, pyotp.TOTP(seed).at(time.time() + 30))

    assert response.status_code == 200  # type: ignore[attr-defined]
    assert "Please enter the correct" in response.content.decode()  # type: ignore[attr-defined]


@override_settings(LOGIN_MAX_FAILURES_PER_ACCOUNT=3)
def test_unicode_digits_are_a_wrong_code_that_counts_towards_the_lockout(
    staff: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = enroll(staff, monkeypatch)
    for code in UNICODE_DIGITS:
        refused = sign_in(staff.email, DEFAULT_PASSWORD, code)
        assert refused.status_code == 200  # type: ignore[attr-defined]  # the form again, not a 500
        assert "Please enter the correct" in refused.content.decode()  # type: ignore[attr-defined]

    locked = sign_in(staff.email, DEFAULT_PASSWORD, pyotp.TOTP(seed).at(time.time() + 30))

    assert "Please enter the correct" in locked.content.decode()  # type: ignore[attr-defined]


def test_mfa_enroll_refuses_an_unknown_user(db: None) -> None:
    with pytest.raises(CommandError, match="user_not_found"):
        call_command("mfa_enroll", "--email", "nobody@example.org", stdout=io.StringIO())


def test_the_admin_can_be_switched_off() -> None:
    try:
        with override_settings(ADMIN_ENABLED=False):
            clear_url_caches()
            importlib.reload(config.urls_public)
            routes = [str(pattern.pattern) for pattern in config.urls_public.urlpatterns]
        assert "admin/" not in routes
    finally:
        clear_url_caches()
        importlib.reload(config.urls_public)


def test_production_turns_the_admin_off_by_default() -> None:
    environment = {**COMPLETE, "DJANGO_SETTINGS_MODULE": "config.settings.production", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.ADMIN_ENABLED)",
        ],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.stdout.strip() == "False", result.stderr
