"""How an accounting names a user (name, organisation, address) and their affiliation: set by operators, on record.

Only an operator changes either (``create_user``, ``set_user_profile``,
``set_affiliation``); no API route takes them, so a member cannot make
themselves workforce; each change is one event naming the operator. An
affiliation applies from now on: the row's start is the server's clock.
"""

from __future__ import annotations

import datetime
import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from security.affiliations import affiliation_history
from security.models import Affiliation, User
from tenants.models import Community
from tests.factories import DEFAULT_PASSWORD
from tests.support.clients import MemberClient
from tests.support.events import log_events, platform_events
from tests.support.roles import as_service_role


def run(name: str, *args: str) -> str:
    out = io.StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def test_create_user_takes_the_name_organisation_and_address(monkeypatch: pytest.MonkeyPatch, db: None) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(DEFAULT_PASSWORD + "\n"))

    run(
        "create_user",
        "--email",
        "grace@example.org",
        "--password-stdin",
        "--name",
        "Grace Hopper",
        "--organisation",
        "Partner University Hospital",
        "--address",
        "1 College Street, Springfield",
        "--operator",
        "alice",
    )

    user = User.objects.get(email="grace@example.org")
    assert (user.full_name, user.organisation, user.postal_address) == (
        "Grace Hopper",
        "Partner University Hospital",
        "1 College Street, Springfield",
    )


def test_set_user_profile_changes_only_the_fields_given_and_leaves_one_event(
    alpha: Community, member: Callable[..., User]
) -> None:
    user = member(alpha, "researcher", full_name="Old Name", organisation="Old Org")

    run("set_user_profile", "--email", user.email, "--organisation", "Sponsor Inc.", "--operator", "alice")

    user.refresh_from_db()
    assert (user.full_name, user.organisation) == ("Old Name", "Sponsor Inc.")
    [event] = platform_events(action="user.profile")
    assert (event.actor_id, event.resource_id, event.reasons) == ("operator:alice", str(user.pk), ["organisation"])


def test_set_user_profile_needs_a_field(alpha: Community, member: Callable[..., User]) -> None:
    with pytest.raises(CommandError):
        run("set_user_profile", "--email", member(alpha).email, "--operator", "alice")


def test_an_affiliation_starts_now_and_is_one_event_in_the_communitys_log(
    alpha: Community, member: Callable[..., User]
) -> None:
    user = member(alpha, "researcher")
    before = timezone.now()

    run(
        "set_affiliation",
        "--community",
        "alpha",
        "--email",
        user.email,
        "--affiliation",
        "workforce",
        "--operator",
        "hr",
    )

    [row] = Affiliation.objects.filter(user=user)
    assert row.valid_from >= before
    assert (row.kind, row.recorded_by) == ("workforce", "operator:hr")
    [event] = log_events("alpha", action="membership.affiliation")
    assert (event.actor_id, event.resource_id, event.reasons) == ("operator:hr", str(user.pk), ["to:workforce"])
    history = affiliation_history(community_id=alpha.pk, user_ids=[str(user.pk)])
    assert history.at(str(user.pk), before - datetime.timedelta(seconds=1)) == "external"
    assert history.at(str(user.pk), timezone.now()) == "workforce"


def test_no_affiliation_for_someone_who_is_not_a_member_there(
    beta: Community, alpha: Community, member: Callable[..., User]
) -> None:
    user = member(alpha, "researcher")

    with pytest.raises(CommandError, match="membership_not_found"):
        run("set_affiliation", "--community", "beta", "--email", user.email, "--affiliation", "workforce")

    assert not Affiliation.objects.exists()
    assert log_events("beta", action="membership.affiliation") == []


def test_a_member_cannot_make_themselves_workforce_over_the_api(member_client: MemberClient) -> None:
    client: APIClient
    client, user = member_client("principal_investigator")

    attempts = [
        client.patch("/api/v1/me", {"affiliation": "workforce"}, format="json"),
        client.post("/api/v1/me", {"affiliation": "workforce"}, format="json"),
        client.put("/api/v1/me", {"organisation": "Covered Entity"}, format="json"),
    ]

    assert all(response.status_code in {403, 404, 405} for response in attempts)
    assert not Affiliation.objects.filter(user=user).exists()
    user.refresh_from_db()
    assert user.organisation == ""


# --- review fix: the table is append-only, and the start is the database's time ------------------------------


def refused(statement: str, params: list[Any]) -> str:
    with pytest.raises(DatabaseError) as raised, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)
    return str(raised.value)


def test_the_service_role_cannot_rewrite_or_delete_an_affiliation(
    alpha: Community, member: Callable[..., User]
) -> None:
    """An attacker with the service's database credentials backdates a workforce row, or removes a row."""
    user = member(alpha, "principal_investigator")
    run(
        "set_affiliation",
        "--operator",
        "hr",
        "--email",
        user.email,
        "--community",
        "alpha",
        "--affiliation",
        "workforce",
    )
    row = Affiliation.objects.get(user=user)
    long_ago = timezone.now() - datetime.timedelta(days=3000)

    with as_service_role():
        rewritten = refused("UPDATE security_affiliation SET valid_from = %s WHERE id = %s", [long_ago, row.pk])
        deleted = refused("DELETE FROM security_affiliation WHERE id = %s", [row.pk])
    as_owner = refused("UPDATE security_affiliation SET kind = 'external' WHERE id = %s", [row.pk])

    assert "permission denied" in rewritten
    assert "permission denied" in deleted
    assert "append-only" in as_owner
    row.refresh_from_db()
    assert (row.kind, row.valid_from > long_ago) == ("workforce", True)


def test_an_affiliation_starts_at_the_databases_time(alpha: Community, member: Callable[..., User]) -> None:
    user = member(alpha, "principal_investigator")
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        before = cursor.fetchone()[0]

    made = Affiliation.objects.create(user=user, community=alpha, kind="workforce", recorded_by="hr")
    made.refresh_from_db()

    assert made.valid_from >= before


def test_the_service_role_cannot_backdate_a_new_affiliation(alpha: Community, member: Callable[..., User]) -> None:
    """With the service's database credentials, an attacker inserts a workforce row dated years back."""
    user = member(alpha, "principal_investigator")
    long_ago = timezone.now() - datetime.timedelta(days=3000)

    with as_service_role(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO security_affiliation (user_id, community_id, kind, valid_from, recorded_by, recorded_at) "
            "VALUES (%s, %s, 'workforce', %s, 'attacker', now())",
            [user.pk, alpha.pk, long_ago],
        )

    row = Affiliation.objects.get(user=user)
    assert row.valid_from > timezone.now() - datetime.timedelta(minutes=5)
