"""An insider changes access, keys or a community from the shell, or floods the edge, and hopes nobody can tell.

Security review finding 14: role grants, user creation, MFA enrolment and key
rotations from the server's shell wrote no audit event; lifecycle steps named
only "operator"; refusals made before the audit middleware (suspended
community, gateway required, rate limited) were not recorded at all. Each test
makes one such change, as the attacker would (no ``--operator``: the OS user is
who ran it), and looks for exactly one chained event naming them.
"""

from __future__ import annotations

import getpass
import io
from collections.abc import Callable
from pathlib import Path

import pyotp
import pytest
from django.contrib import admin
from django.core.management import call_command
from django.test import RequestFactory, override_settings
from rest_framework.test import APIClient

from security.admin import UserAdmin
from security.audit.models import AuditEvent
from security.identity.mfa import _seed
from security.models import TotpDevice, User
from tenants.models import Community
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.support.clients import ALPHA_HOST
from tests.support.events import last_sequence, log_events, platform_events

ME = f"operator:{getpass.getuser()}"


def shell(name: str, *args: str) -> None:
    call_command(name, *args, stdout=io.StringIO())


def refusals(code: str) -> list[AuditEvent]:
    return [event for event in log_events("alpha") if code in event.reasons]


def test_a_shell_role_grant_leaves_no_trace(alpha: Community) -> None:
    """Security review finding 14: ``add_member`` gave a role and wrote nothing in the community's log."""
    user = UserFactory.create()

    shell("add_member", "--email", user.email, "--community", "alpha", "--role", "owner")

    grants = [event for event in log_events("alpha") if event.action == "membership.grant"]
    assert [(event.actor_id, event.resource_id) for event in grants] == [(ME, f"{user.pk}:owner")]


def test_a_shell_user_creation_leaves_no_trace(monkeypatch: pytest.MonkeyPatch, db: None) -> None:
    """Security review finding 14: ``create_user`` made an account and wrote nothing."""
    monkeypatch.setattr("sys.stdin", io.StringIO(DEFAULT_PASSWORD + "\n"))

    shell("create_user", "--email", "mallory@example.org", "--password-stdin")

    user = User.objects.get(email="mallory@example.org")
    assert [(event.action, event.actor_id) for event in platform_events(resource_id=str(user.pk))] == [
        ("user.create", ME)
    ]


def test_a_shell_mfa_enrolment_leaves_no_trace(monkeypatch: pytest.MonkeyPatch, db: None) -> None:
    """Security review finding 14: ``mfa_enroll`` bound an authenticator to someone's account and wrote nothing."""
    victim = UserFactory.create()

    class CurrentCode:
        def readline(self) -> str:
            return pyotp.TOTP(_seed(TotpDevice.objects.get(user=victim))).now() + "\n"

    monkeypatch.setattr("sys.stdin", CurrentCode())

    shell("mfa_enroll", "--email", victim.email)

    assert [(event.action, event.actor_id) for event in platform_events(resource_id=str(victim.pk))] == [
        ("user.mfa_enroll", ME)
    ]


def test_a_shell_key_rotation_leaves_no_trace(alpha: Community) -> None:
    """Security review finding 14: ``rotate_keys`` made a new key version and wrote nothing."""
    shell("rotate_keys", "--community", "alpha", "--inline")

    rotations = [event for event in log_events("alpha") if event.resource_type == "community_key"]
    assert [event.actor_id for event in rotations] == [ME]


def test_a_shell_signing_key_rotation_leaves_no_trace(tmp_path: Path, db: None) -> None:
    """Security review finding 14: ``rotate_signing_key`` replaced the token signing key and wrote nothing."""
    since = last_sequence("public")

    with override_settings(JWT_SIGNING_KEYS_DIR=tmp_path):
        shell("rotate_signing_key")

    assert [(event.action, event.actor_id) for event in platform_events(sequence__gt=since)] == [
        ("signing_key.rotate", ME)
    ]


def test_a_shell_suspension_names_nobody(beta: Community) -> None:
    """Security review finding 14: a lifecycle step was recorded as done by the bare word "operator"."""
    since = last_sequence("public")

    shell("suspend_community", "--slug", "beta")

    assert [(event.action, event.actor_id) for event in platform_events(sequence__gt=since)] == [
        ("community.suspended", ME)
    ]


def test_an_admin_deactivation_leaves_no_trace(db: None) -> None:
    """Security review finding 14: the admin's ``is_active``/``is_staff`` changes were only in django_admin_log."""
    staff, user = UserFactory.create(is_staff=True, is_superuser=True), UserFactory.create()
    request = RequestFactory().post("/admin/")
    request.user = staff
    user.is_staff = True

    UserAdmin(User, admin.site).save_model(request, user, form=None, change=True)  # type: ignore[arg-type]  # unused

    assert [(event.action, event.actor_id) for event in platform_events(resource_id=str(user.pk))] == [
        ("user.staff_grant", str(staff.pk))
    ]


def test_a_suspended_community_refusal_leaves_no_trace(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    """Security review finding 14: 403 ``community_suspended`` came before the audit middleware and left nothing."""
    shell("suspend_community", "--slug", "alpha")

    assert client_for(ALPHA_HOST).get("/api/v1/me").status_code == 403

    assert len(refusals("community_suspended")) == 1


@override_settings(REQUIRE_GATEWAY=True, TRUSTED_PROXIES=("10.0.0.0/8",), PROXY_SHARED_SECRET="s" * 32)
def test_a_request_around_the_gateway_leaves_no_trace(alpha: Community, client_for: Callable[[str], APIClient]) -> None:
    """Security review finding 14: 403 ``gateway_required`` came before the audit middleware and left nothing."""
    assert client_for(ALPHA_HOST).get("/api/v1/me").status_code == 403

    assert len(refusals("gateway_required")) == 1


def test_a_flood_of_rate_limited_requests_leaves_no_trace(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    """Security review finding 14: the per-address 429 left nothing, however long the flood (now one event; counted)."""
    client = client_for(ALPHA_HOST)
    with override_settings(RATE_LIMIT_IP_BURST=1, RATE_LIMIT_PER_IP=1):
        statuses = [client.get("/api/v1/me").status_code for _ in range(50)]

    assert statuses.count(429) >= 45
    assert len(refusals("rate_limited")) == 1
