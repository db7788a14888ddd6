"""Every privileged change writes one chained event naming who made it, in the change's own transaction.

Each command is run as an operator would, and leaves exactly one event with
``operator:<name>``; each action made to fail right after its event is
staged leaves neither the change nor the event.
"""

from __future__ import annotations

import getpass
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyotp
import pytest
from django.contrib import admin
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory, override_settings
from django_tenants.utils import schema_context

from security import actions
from security.admin import UserAdmin
from security.audit.events import platform_record
from security.audit.staging import audit_append, record
from security.identity.mfa import _seed, totp_enrollment_begin
from security.models import Membership, TotpDevice, User
from tenants.lifecycle import community_suspend
from tenants.models import Community, CommunityStatus
from tests.factories import DEFAULT_PASSWORD, ParticipantFactory, UserFactory
from tests.support.events import last_sequence, log_events, platform_events

ALICE = "operator:alice"
PI = "principal_investigator"


def run(name: str, *args: str) -> str:
    out = io.StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def test_add_member_leaves_one_grant_in_the_communitys_log(alpha: Community) -> None:
    user = UserFactory.create()

    run("add_member", "--email", user.email, "--community", "alpha", "--role", "researcher", "--operator", "alice")

    [event] = log_events("alpha", action="membership.grant")
    assert (event.actor_id, event.resource_type, event.resource_id) == (ALICE, "membership", f"{user.pk}:researcher")
    assert log_events("beta", action="membership.grant") == []


def test_a_role_change_and_a_removal_are_one_event_each(alpha: Community, member: Callable[..., User]) -> None:
    user = member(alpha, "researcher")

    run("change_member_role", "--email", user.email, "--community", "alpha", "--from", "researcher", "--to", PI)
    run("remove_member", "--email", user.email, "--community", "alpha", "--role", PI, "--operator", "alice")

    [change] = log_events("alpha", action="membership.role_change")
    [removal] = log_events("alpha", action="membership.remove")
    assert change.actor_id == f"operator:{getpass.getuser()}"
    assert (change.resource_id, change.reasons) == (f"{user.pk}:principal_investigator", ["from:researcher"])
    assert (removal.actor_id, removal.resource_id) == (ALICE, f"{user.pk}:principal_investigator")
    assert not Membership.objects.filter(user=user).exists()


def test_create_user_leaves_one_event_in_the_platform_log(monkeypatch: pytest.MonkeyPatch, db: None) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(DEFAULT_PASSWORD + "\n"))

    run("create_user", "--email", "ada@example.org", "--password-stdin", "--operator", "alice")

    user = User.objects.get(email="ada@example.org")
    [event] = platform_events(action="user.create")
    assert (event.actor_id, event.resource_id) == (ALICE, str(user.pk))


def test_deactivation_and_reactivation_are_one_event_each_and_a_no_op_none(db: None) -> None:
    user = UserFactory.create()

    run("deactivate_user", "--email", user.email, "--operator", "alice")
    run("deactivate_user", "--email", user.email, "--operator", "alice")  # already: nothing changes
    run("deactivate_user", "--email", user.email, "--reactivate", "--operator", "alice")

    assert [event.action for event in platform_events(resource_id=str(user.pk))] == [
        "user.deactivate",
        "user.reactivate",
    ]
    assert {event.actor_id for event in platform_events(resource_id=str(user.pk))} == {ALICE}


def test_mfa_enroll_and_mfa_reset_leave_one_event_each(monkeypatch: pytest.MonkeyPatch, db: None) -> None:
    user = UserFactory.create()

    class CurrentCode:
        def readline(self) -> str:
            return pyotp.TOTP(_seed(TotpDevice.objects.get(user=user))).now() + "\n"

    monkeypatch.setattr("sys.stdin", CurrentCode())
    run("mfa_enroll", "--email", user.email, "--operator", "alice")
    run("mfa_reset", "--email", user.email, "--operator", "bob")

    [enrolment] = platform_events(action="user.mfa_enroll")
    [reset] = platform_events(action="user.mfa_reset")
    assert (enrolment.actor_id, enrolment.resource_id) == (ALICE, str(user.pk))
    assert (reset.actor_id, reset.resource_id) == ("operator:bob", str(user.pk))
    assert not TotpDevice.objects.filter(user=user).exists()


def test_a_self_service_enrolment_names_the_user(
    member_client: Callable[..., Any],
) -> None:
    _, user = member_client("researcher", second_factor=True)

    [event] = platform_events(action="user.mfa_enroll")
    assert event.actor_id == str(user.pk)


def test_rotate_keys_leaves_one_event_in_the_communitys_log(alpha: Community) -> None:
    with schema_context("alpha"):
        ParticipantFactory.create()

    run("rotate_keys", "--community", "alpha", "--inline", "--operator", "alice")

    [event] = log_events("alpha", action="community.key_rotate")
    assert event.actor_id == ALICE
    assert event.resource_type == "community_key"
    assert event.resource_id.startswith("alpha:")


def test_rotate_signing_key_leaves_one_event_and_pruning_another(tmp_path: Path, db: None) -> None:
    with override_settings(JWT_SIGNING_KEYS_DIR=tmp_path):
        run("rotate_signing_key", "--operator", "alice")
        run("rotate_signing_key", "--if-missing", "--operator", "alice")  # a key is there: nothing changes

    [event] = platform_events(action="signing_key.rotate")
    [key_file] = tmp_path.glob("*.pem")
    assert (event.actor_id, event.resource_id) == (ALICE, key_file.stem.partition("-")[2])


@pytest.mark.parametrize(
    ("command", "args", "action"),
    [
        ("create_community", ("--slug", "gamma", "--name", "Gamma", "--domain", "gamma.localhost"), "community.create"),
        ("suspend_community", ("--slug", "beta"), "community.suspended"),
        ("offboard_community", ("--slug", "beta", "--confirm", "beta"), "community.offboard"),
    ],
)
def test_each_lifecycle_command_leaves_one_event_naming_the_operator(
    beta: Community, command: str, args: tuple[str, ...], action: str
) -> None:
    since = last_sequence("public")

    run(command, *args, "--operator", "alice")

    [event] = platform_events(sequence__gt=since)
    assert (event.action, event.actor_id) == (action, ALICE)


def test_resume_and_purge_leave_one_event_each(beta: Community) -> None:
    since = last_sequence("public")
    run("suspend_community", "--slug", "beta", "--operator", "alice")
    run("resume_community", "--slug", "beta", "--operator", "alice")
    run("offboard_community", "--slug", "beta", "--confirm", "beta", "--operator", "alice")
    Community.objects.filter(slug="beta").update(status_changed_at="2000-01-01T00:00:00Z")

    run("purge_offboarded_communities", "--operator", "alice")

    assert [event.action for event in platform_events(sequence__gt=since)] == [
        "community.suspended",
        "community.active",
        "community.offboard",
        "community.purge",
    ]
    assert {event.actor_id for event in platform_events(sequence__gt=since)} == {ALICE}


@pytest.mark.parametrize("name", ["", "operator with spaces", "x" * 56, "-leading-dash"])
def test_an_unusable_operator_name_is_refused_before_anything_changes(name: str, alpha: Community) -> None:
    user = UserFactory.create()

    with pytest.raises(CommandError, match="--operator"):
        run("add_member", "--email", user.email, "--community", "alpha", "--role", PI, f"--operator={name}")

    assert not Membership.objects.filter(user=user).exists()


def _fail_after(monkeypatch: pytest.MonkeyPatch, target: str, real: Callable[..., None]) -> None:
    def write_then_fail(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)
        raise RuntimeError("the action fails after its event was staged")

    monkeypatch.setattr(target, write_then_fail)


def test_a_failed_grant_leaves_neither_the_membership_nor_its_event(
    monkeypatch: pytest.MonkeyPatch, alpha: Community
) -> None:
    user = UserFactory.create()
    _fail_after(monkeypatch, "security.actions._membership_event", actions._membership_event)

    with pytest.raises(RuntimeError):
        actions.membership_add(email=user.email, community_slug="alpha", role="principal_investigator", actor_id=ALICE)

    assert not Membership.objects.filter(user=user).exists()
    assert log_events("alpha", action="membership.grant") == []


def test_a_failed_user_creation_leaves_neither_the_user_nor_its_event(
    monkeypatch: pytest.MonkeyPatch, db: None
) -> None:
    _fail_after(monkeypatch, "security.actions.platform_record", platform_record)

    with pytest.raises(RuntimeError):
        actions.user_create(email="ada@example.org", password=DEFAULT_PASSWORD, actor_id=ALICE)

    assert not User.objects.filter(email="ada@example.org").exists()
    assert platform_events(action="user.create") == []


def test_a_failed_suspension_leaves_neither_the_status_nor_its_event(
    monkeypatch: pytest.MonkeyPatch, beta: Community
) -> None:
    _fail_after(monkeypatch, "tenants.lifecycle.audit_append", audit_append)

    with pytest.raises(RuntimeError):
        community_suspend(slug="beta", actor_id=ALICE)

    assert Community.objects.get(slug="beta").status == CommunityStatus.ACTIVE
    assert platform_events(action="community.suspended") == []


def test_a_failed_signing_key_rotation_leaves_neither_the_key_nor_its_event(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db: None
) -> None:
    _fail_after(monkeypatch, "security.actions.platform_record", platform_record)

    with pytest.raises(RuntimeError):
        actions.signing_key_rotate(directory=tmp_path, actor_id=ALICE)

    assert list(tmp_path.glob("*.pem")) == []
    assert platform_events(action="signing_key.rotate") == []


def test_a_failed_key_rotation_leaves_neither_the_job_nor_its_event(
    monkeypatch: pytest.MonkeyPatch, alpha: Community
) -> None:
    from vault.models import RotationJob  # noqa: PLC0415

    _fail_after(monkeypatch, "security.actions.record", record)

    with pytest.raises(RuntimeError):
        actions.community_key_rotate(community_slug="alpha", actor_id=ALICE)

    with schema_context("alpha"):
        assert not RotationJob.objects.exists()
    assert log_events("alpha", action="community.key_rotate") == []


def test_the_admin_saves_flags_through_the_action_with_the_staff_members_id(db: None) -> None:
    staff = UserFactory.create(is_staff=True, is_superuser=True)
    user = UserFactory.create()
    request = RequestFactory().post("/admin/")
    request.user = staff
    user.is_active, user.is_staff = False, True

    UserAdmin(User, admin.site).save_model(request, user, form=None, change=True)  # type: ignore[arg-type]  # unused

    assert [(event.action, event.actor_id) for event in platform_events(resource_id=str(user.pk))] == [
        ("user.deactivate", str(staff.pk)),
        ("user.staff_grant", str(staff.pk)),
    ]
    user.refresh_from_db()
    assert (user.is_active, user.is_staff) == (False, True)


def test_the_admin_adds_and_deletes_no_user(db: None) -> None:
    request = RequestFactory().get("/admin/")
    model_admin = UserAdmin(User, admin.site)

    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_delete_permission(request)


def test_enrolment_begun_by_the_shell_and_never_confirmed_records_nothing(db: None) -> None:
    totp_enrollment_begin(user=UserFactory.create())

    assert platform_events(action="user.mfa_enroll") == []
