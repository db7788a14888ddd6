"""The audit chain: appends link up, the database refuses changes, and any tampering is named."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django_tenants.utils import schema_context

from security.audit.chain import GENESIS, audit_append, verify_live
from security.audit.models import AuditEvent
from tenants.models import Community


def append(count: int) -> list[AuditEvent]:
    return [
        audit_append(
            actor_id=f"u-{n}",
            actor_roles=["coordinator"],
            action="participant.read",
            resource_type="participant",
            resource_id=f"p-{n}",
            outcome="allow",
            decision_id=f"d-{n}",
            reasons=["role_grants_action"],
        )
        for n in range(count)
    ]


@pytest.fixture
def chain(alpha: Community) -> Iterator[list[AuditEvent]]:
    with schema_context("alpha"):
        yield append(5)


def test_appends_form_a_gapless_linked_chain(chain: list[AuditEvent]) -> None:
    assert [event.sequence for event in chain] == [1, 2, 3, 4, 5]
    assert chain[0].previous_hash == GENESIS
    assert all(later.previous_hash == earlier.entry_hash for earlier, later in itertools.pairwise(chain))
    with schema_context("alpha"):
        assert verify_live().intact
        assert verify_live().checked == 5


def test_each_community_has_its_own_chain(chain: list[AuditEvent], beta: Community) -> None:
    with schema_context("beta"):
        assert append(1)[0].sequence == 1
        assert verify_live().checked == 1


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_auditevent SET action = 'x'", "DELETE FROM audit_auditevent", "TRUNCATE audit_auditevent"],
)
def test_the_database_refuses_to_change_the_log(statement: str, chain: list[AuditEvent]) -> None:
    with (
        schema_context("alpha"),
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)


def tamper(*statements: str) -> None:
    """What someone with the database's superuser could still do: switch the guard off and edit."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        for statement in statements:
            cursor.execute(statement)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")


@pytest.mark.parametrize(
    ("statement", "first_bad"),
    [
        ("UPDATE audit_auditevent SET resource_id = 'p-other' WHERE sequence = 3", 3),
        ("DELETE FROM audit_auditevent WHERE sequence = 2", 2),
        ("UPDATE audit_auditevent SET sequence = sequence + 10 WHERE sequence >= 4", 4),
        (
            "INSERT INTO audit_auditevent (sequence, occurred_at, actor_id, actor_roles, action, resource_type, "
            "resource_id, participant_pseudonym, purpose, outcome, decision_id, policy_revision, reasons, request_id, "
            "client_ip, user_agent, break_glass, previous_hash, entry_hash) SELECT 6, occurred_at, actor_id, "
            "actor_roles, action, resource_type, resource_id, participant_pseudonym, purpose, outcome, decision_id, "
            "policy_revision, reasons, request_id, client_ip, user_agent, break_glass, entry_hash, 'f' || "
            "substr(entry_hash, 2) FROM audit_auditevent WHERE sequence = 5",
            6,
        ),
    ],
    ids=["edit a field", "delete a row", "renumber the tail", "insert a forged row"],
)
def test_tampering_is_caught_and_the_first_bad_entry_named(
    statement: str, first_bad: int, chain: list[AuditEvent]
) -> None:
    with schema_context("alpha"):
        tamper(statement)

        result = verify_live()

    assert result.first_bad_sequence == first_bad
    with pytest.raises(CommandError, match=f"broken at #{first_bad}"):
        call_command("audit_verify", "--community", "alpha", stdout=io.StringIO())


def test_swapping_two_rows_is_caught(chain: list[AuditEvent]) -> None:
    with schema_context("alpha"):
        tamper(
            "UPDATE audit_auditevent SET sequence = -2 WHERE sequence = 2",
            "UPDATE audit_auditevent SET sequence = 2 WHERE sequence = 3",
            "UPDATE audit_auditevent SET sequence = 3 WHERE sequence = -2",
        )

        assert verify_live().first_bad_sequence == 2


def test_audit_verify_reports_an_intact_chain(chain: list[AuditEvent]) -> None:
    out = io.StringIO()

    call_command("audit_verify", "--community", "alpha", stdout=out)

    assert out.getvalue().strip() == "audit chain of alpha: 5 entries intact"
