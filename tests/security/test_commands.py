"""``create_user`` and ``add_member``: clear one-line errors, passwords only from standard input."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core.errors import BadRequest
from security.actions import membership_add
from security.models import Affiliation, Membership, User
from tenants.models import Community
from tests.factories import DEFAULT_PASSWORD


def create_user(monkeypatch: pytest.MonkeyPatch, email: str, stdin: str, *flags: str) -> str:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    out = io.StringIO()
    call_command("create_user", "--email", email, *flags, stdout=out)
    return out.getvalue()


def test_create_user_reads_the_password_from_stdin(monkeypatch: pytest.MonkeyPatch, db: None) -> None:
    output = create_user(monkeypatch, "Ada@Example.org", DEFAULT_PASSWORD + "\n", "--password-stdin")

    user = User.objects.get(email="ada@example.org")
    assert output.startswith("created user ada@example.org")
    assert user.check_password(DEFAULT_PASSWORD)
    assert DEFAULT_PASSWORD not in output


def test_create_user_without_password_stdin_is_refused(monkeypatch: pytest.MonkeyPatch, db: None) -> None:
    with pytest.raises(CommandError, match="--password-stdin"):
        create_user(monkeypatch, "ada@example.org", DEFAULT_PASSWORD)
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("email", "password", "code"),
    [
        ("not-an-email", DEFAULT_PASSWORD, "invalid_email"),
        ("ada@example.org", "short", "weak_password"),
        ("ada@example.org", "", "no password"),
    ],
)
def test_create_user_refuses_bad_input(
    monkeypatch: pytest.MonkeyPatch, db: None, email: str, password: str, code: str
) -> None:
    with pytest.raises(CommandError, match=code):
        create_user(monkeypatch, email, password + "\n", "--password-stdin")
    assert not User.objects.exists()


def test_create_user_refuses_a_duplicate(monkeypatch: pytest.MonkeyPatch, db: None) -> None:
    create_user(monkeypatch, "ada@example.org", DEFAULT_PASSWORD, "--password-stdin")

    with pytest.raises(CommandError, match="user_exists"):
        create_user(monkeypatch, "ADA@example.org", DEFAULT_PASSWORD, "--password-stdin")


def add_member(*args: str) -> str:
    out = io.StringIO()
    call_command("add_member", *args, stdout=out)
    return out.getvalue()


def test_add_member_grants_a_role(monkeypatch: pytest.MonkeyPatch, alpha: Community) -> None:
    create_user(monkeypatch, "ada@example.org", DEFAULT_PASSWORD, "--password-stdin")

    output = add_member("--email", "ada@example.org", "--community", "alpha", "--role", "auditor")

    assert output.strip() == "ada@example.org is auditor in alpha"
    assert Membership.objects.get().role == "auditor"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--email", "nobody@example.org", "--community", "alpha", "--role", "auditor"), "user_not_found"),
        (("--email", "ada@example.org", "--community", "nosuch", "--role", "auditor"), "community_not_found"),
        (("--email", "ada@example.org", "--community", "alpha", "--role", "emperor"), "invalid choice"),
    ],
)
def test_add_member_refuses_unknowns(
    monkeypatch: pytest.MonkeyPatch, alpha: Community, args: tuple[str, ...], message: str
) -> None:
    create_user(monkeypatch, "ada@example.org", DEFAULT_PASSWORD, "--password-stdin")

    with pytest.raises(CommandError, match=message):
        add_member(*args)
    assert not Membership.objects.exists()


def test_add_member_refuses_a_duplicate_role(monkeypatch: pytest.MonkeyPatch, alpha: Community) -> None:
    create_user(monkeypatch, "ada@example.org", DEFAULT_PASSWORD, "--password-stdin")
    add_member("--email", "ada@example.org", "--community", "alpha", "--role", "owner")

    with pytest.raises(CommandError, match="membership_exists"):
        add_member("--email", "ada@example.org", "--community", "alpha", "--role", "owner")


def test_membership_add_refuses_an_unknown_role_from_code(alpha: Community) -> None:
    with pytest.raises(BadRequest, match="role must be one of"):
        membership_add(email="a@example.org", community_slug="alpha", role="emperor", actor_id="operator:test")


def test_seed_demo_is_idempotent_and_prints_working_instructions(db: None, tmp_path: Any, settings: Any) -> None:
    settings.DEMO_SEED_ALLOWED = True
    settings.LOCAL_STATE_DIR = tmp_path
    first, second = io.StringIO(), io.StringIO()

    call_command("seed_demo", stdout=first)
    call_command("seed_demo", stdout=second)

    password = (tmp_path / "demo-password").read_text().strip()
    assert (tmp_path / "demo-password").stat().st_mode & 0o777 == 0o600
    assert first.getvalue() == second.getvalue()
    assert "curl -s -X POST http://127.0.0.1:8000/api/v1/auth/token -H 'Host: alpha.localhost'" in first.getvalue()
    assert password in first.getvalue()
    assert Membership.objects.filter(community__slug="alpha").count() == 6
    assert Membership.objects.filter(community__slug="beta").count() == 6
    assert User.objects.get(email="owner@alpha.example").check_password(password)
    researcher = User.objects.get(email="researcher@alpha.example")
    assert (researcher.full_name, researcher.organisation) == ("Demo Researcher", "Partner University (demo)")
    kinds = dict(Affiliation.objects.filter(community__slug="alpha").values_list("user__email", "kind"))
    assert kinds["researcher@alpha.example"] == "external"
    assert kinds["coordinator@alpha.example"] == "workforce"
    assert Affiliation.objects.count() == 12


def test_seed_demo_is_refused_outside_development(db: None) -> None:
    with pytest.raises(CommandError, match="development settings only"):
        call_command("seed_demo")


def test_the_printed_curl_commands_get_a_token_and_call_me(
    db: None, tmp_path: Any, settings: Any, client_for: Any
) -> None:
    settings.DEMO_SEED_ALLOWED = True
    settings.LOCAL_STATE_DIR = tmp_path
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    token_line = next(line for line in out.getvalue().splitlines() if "auth/token" in line)
    body = json.loads(token_line.split("-d '", 1)[1].split("'", 1)[0])

    token = client_for("alpha.localhost").post("/api/v1/auth/token", body, format="json").json()["access"]
    me = client_for("alpha.localhost")
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    assert me.get("/api/v1/me").json()["email"] == "owner@alpha.example"
