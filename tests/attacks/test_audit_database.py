"""Attacks on the audit log with the service's own database role: each SQL step of the review, refused.

Security review finding 3: with only the privileges the service already held,
a database user could purge history inside the retention period, drop staged
events before they were chained, or date every later event in 2099, and
``audit_verify`` still said "intact". The service now runs as a role that may
only append to the log (``tenants.roles``); the one DELETE of each table
happens inside a function of the tables' owner that checks its own
preconditions (audit migration 0006). These tests act as that role
(``SET ROLE``), in a community's schema, inside the test's transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from security.audit.checkpoints import checkpoint_create
from security.audit.hashing import CHAINED_FIELDS, entry_hash
from security.audit.live import verify_live
from security.audit.models import AuditEvent, PendingEvent
from security.audit.retention import audit_purge
from security.audit.sequencer import audit_chain
from security.audit.staging import audit_append
from tenants.models import Community
from tests.support.roles import as_service_role


def read(n: int, **fields: Any) -> None:
    audit_append(action="participant.read", resource_type="participant", resource_id=f"p-{n}", **fields)


def refused(statement: str, params: list[Any] | None = None) -> str:
    """Run ``statement`` in a savepoint; the database's refusal, as text (the test fails if it succeeds)."""
    with pytest.raises(DatabaseError) as raised, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params or [])
    return str(raised.value)


@pytest.fixture
def as_service(alpha: Community) -> Iterator[None]:
    """Alpha's schema, five chained events, and the service's database role from here on."""
    with schema_context("alpha"):
        for n in range(5):
            read(n)
        audit_chain()
        with as_service_role():
            yield


def test_purging_inside_the_retention_period_with_the_old_session_setting(as_service: None) -> None:
    """Security review finding 3, scenario 1: set ``audit.purge_through`` and delete up to a checkpoint."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('audit.purge_through', '3', true)")
    assert "permission denied" in refused("DELETE FROM audit_auditevent WHERE sequence <= 3")
    checkpoint_create()
    assert "inside the retention period" in refused("SELECT audit_purge_through(3, 2196)")
    assert "six years" in refused("SELECT audit_purge_through(3, 30)")
    assert AuditEvent.objects.count() == 5


def test_dropping_staged_events_before_they_are_chained(as_service: None) -> None:
    """Security review finding 3, scenario 2: set ``audit.chaining`` and delete the staged rows."""
    read(99)
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('audit.chaining', 'on', false)")
        assert "permission denied" in refused("DELETE FROM audit_pendingevent")
        staged = list(PendingEvent.objects.values_list("id", flat=True))
        cursor.execute("SELECT audit_consume_staged(%s)", [staged])  # not chained yet: nothing to consume
        assert cursor.fetchone()[0] == 0
    assert PendingEvent.objects.count() == 1
    assert audit_chain() == 1
    assert AuditEvent.objects.order_by("-sequence").values_list("resource_id", flat=True).first() == "p-99"


def test_a_forged_chain_entry_does_not_let_the_staged_event_it_claims_be_dropped(as_service: None) -> None:
    """Security review finding 3, scenario 2: chain a different event under the staged row's id, then consume it."""
    read(42, reasons=["role_grants_action"])
    staged = PendingEvent.objects.get()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditevent (sequence, occurred_at, actor_id, actor_roles, action, resource_type,"
            " resource_id, participant_pseudonyms, purpose, outcome, http_status, decision_id, policy_revision,"
            " reasons, request_id, client_ip, user_agent, break_glass, previous_hash, entry_hash, staged_id)"
            " VALUES (1000, now(), '', '[]', 'nothing.happened', '', '', '{}', '', 'allow', 0, '', '', '[]', '',"
            " '', '', false, 'x', md5('forged') || md5('forged'), %s)",
            [staged.pk],
        )
        cursor.execute("SELECT audit_consume_staged(%s)", [[staged.pk]])
        assert cursor.fetchone()[0] == 0
    assert PendingEvent.objects.filter(pk=staged.pk).exists()


def test_dating_every_later_event_in_2099_with_one_staged_row(as_service: None) -> None:
    """Security review finding 3, scenario 3: a staged row dated 2099 pinned every later event's time."""
    entry = json.loads(_a_staged_entry())
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_pendingevent (entry, staged_at) VALUES (%s, '2099-01-01')",
            [json.dumps({**entry, "occurred_at": "2099-01-01T00:00:00.000000Z"})],
        )
    read(7)
    audit_chain()
    latest = AuditEvent.objects.order_by("-sequence")[:2]
    assert all(event.occurred_at <= timezone.now() for event in latest)
    assert all(event.chained_at is not None and event.occurred_at <= event.chained_at for event in latest)
    assert "dated after it was chained" in refused(
        "INSERT INTO audit_auditevent (sequence, occurred_at, action, outcome, previous_hash, entry_hash)"
        " VALUES (2000, '2099-01-01', 'x', 'allow', 'x', 'y')"
    )


def _a_staged_entry() -> str:
    read(0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT entry FROM audit_pendingevent ORDER BY id DESC LIMIT 1")
        entry = str(cursor.fetchone()[0])
    audit_chain()
    return entry


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET action = 'nothing' WHERE sequence = 2",
        "DELETE FROM audit_auditevent WHERE sequence = 5",
        "TRUNCATE audit_auditevent",
        "DELETE FROM audit_checkpoint",
        "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
        "SELECT set_config('audit.purging', '5', true); DELETE FROM audit_auditevent WHERE sequence <= 5",
        "SELECT set_config('audit.consuming', 'on', true); DELETE FROM audit_pendingevent",
        "DROP FUNCTION audit_purge_through(bigint, integer)",
    ],
)
def test_rewriting_or_truncating_the_log_directly(statement: str, as_service: None) -> None:
    """Security review finding 3, scenario 4 and the rest: the service's role can change nothing of the log."""
    problem = refused(statement)

    assert "permission denied" in problem or "must be owner" in problem
    assert AuditEvent.objects.count() == 5
    assert verify_live().intact


def test_the_service_role_still_does_all_its_audit_work(alpha: Community) -> None:
    """The other side: staging, chaining, checkpoints and a purge past the retention all work as the service."""
    old = timezone.now() - timedelta(days=7 * 366)
    with schema_context("alpha"), as_service_role():
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone()[0] == "gateway_service"
        for n in range(3):
            read(n, occurred_at=old + timedelta(seconds=n))  # recorded now, of something seven years ago
        read(3)
        assert audit_chain() == 4
        assert checkpoint_create() is not None

        purged = audit_purge(before=old + timedelta(days=1), actor="operator:test")

        assert (purged.through, purged.events) == (3, 3)
        audit_chain()
        assert list(AuditEvent.objects.values_list("resource_id", flat=True)) == ["p-3", "3"]
        assert verify_live().intact


def test_the_owner_dating_an_entry_in_2099_is_caught_by_the_verifier(alpha: Community) -> None:
    """Security review finding 3, scenario 3 as the tables' owner: the triggers off, a well-hashed entry dated 2099."""
    with schema_context("alpha"):
        for n in range(3):
            read(n)
        audit_chain()
        head = AuditEvent.objects.order_by("-sequence").first()
        assert head is not None
        values = {name: getattr(head, name) for name in CHAINED_FIELDS}
        values.update(sequence=head.sequence + 1, occurred_at="2099-01-01T00:00:00.000000Z", action="x")
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
            AuditEvent.objects.create(
                **{**values, "occurred_at": datetime(2099, 1, 1, tzinfo=UTC)},
                previous_hash=head.entry_hash,
                entry_hash=entry_hash(head.entry_hash, values),
            )
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
        future = verify_live()
        checkpoint_create()  # a checkpoint signed now, over the entry dated 2099
        vouched = verify_live()

    assert "in the future" in future.problem
    assert "after the checkpoint's" in vouched.problem


def test_an_access_is_dated_when_the_chain_took_it_not_when_it_happened(alpha: Community) -> None:
    """Security review finding 15: with the workers down for a while, every access was dated when it was chained."""
    participant = "P-LATE000001"
    with schema_context("alpha"):
        read(1, participant_pseudonyms=[participant], outcome="allow")
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            staged_by = cursor.fetchone()[0]
        time.sleep(0.3)  # the worker comes late
        audit_chain()
        event = AuditEvent.objects.get(participant_pseudonyms__contains=[participant])

    assert event.staged_at is not None
    assert event.chained_at is not None
    assert event.staged_at <= staged_by < event.occurred_at <= event.chained_at
    assert (event.occurred_at - event.staged_at).total_seconds() >= 0.3
