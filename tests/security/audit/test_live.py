"""The live audit chain: appends link up, the database refuses changes, and any tampering is named."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django_tenants.utils import schema_context

from security.audit.checkpoints import checkpoint_create
from security.audit.hashing import CHAINED_FIELDS, GENESIS
from security.audit.live import verify_live
from security.audit.models import AuditEvent
from security.audit.witness import witness_publish_pending
from tenants.models import Community
from tests.support.audit import recorded

COLUMNS = ", ".join(CHAINED_FIELDS)
# A copy of #2 slipped in as #3, with a hash of its own (test-only SQL from constant column names).
FORGED_ROW = (
    f"INSERT INTO audit_auditevent ({COLUMNS}, previous_hash, entry_hash) "  # noqa: S608
    f"SELECT {COLUMNS.replace('sequence', '3', 1)}, previous_hash, md5(entry_hash) || md5(entry_hash) "
    "FROM audit_auditevent WHERE sequence = 2"
)


def append(count: int) -> list[AuditEvent]:
    return [
        recorded(
            actor_id=f"u-{n}",
            actor_roles=["coordinator"],
            action="participant.read",
            resource_type="participant",
            resource_id=f"p-{n}",
            participant_pseudonyms=[f"P-{n:010d}"],
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
    assert all(later.occurred_at >= earlier.occurred_at for earlier, later in itertools.pairwise(chain))
    with schema_context("alpha"):
        assert verify_live().intact
        assert verify_live().checked == 5


def test_each_community_has_its_own_chain(chain: list[AuditEvent], beta: Community) -> None:
    with schema_context("beta"):
        assert append(1)[0].sequence == 1
        assert verify_live().checked == 1


def test_the_platform_has_a_chain_of_its_own_in_the_public_schema(chain: list[AuditEvent]) -> None:
    with schema_context("public"):
        event = recorded(action="community.create", resource_type="community", resource_id="gamma")
        assert event.sequence == AuditEvent.objects.count()
        assert verify_live().intact


def test_unknown_fields_are_refused(alpha: Community) -> None:
    with schema_context("alpha"), pytest.raises(TypeError, match="given_name"):
        recorded(action="participant.read", given_name="Ada")


def test_text_utf8_cannot_hold_is_recorded_with_a_replacement_character(alpha: Community) -> None:
    with schema_context("alpha"):
        event = recorded(action="participant.read", user_agent="agent\ud800", reasons=["odd\udfff"])

        assert (event.user_agent, event.reasons) == ("agent\ufffd", ["odd\ufffd"])
        assert verify_live().intact


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET action = 'x'",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent",
        "UPDATE audit_checkpoint SET sequence = 9",
        "DELETE FROM audit_checkpoint",
        "TRUNCATE audit_checkpoint",
    ],
)
def test_the_database_refuses_to_change_the_log(statement: str, chain: list[AuditEvent]) -> None:
    with schema_context("alpha"):
        checkpoint_create()
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)


def test_the_old_purge_setting_lets_no_delete_through(chain: list[AuditEvent]) -> None:
    with schema_context("alpha"), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('audit.purge_through', '2', true)")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            cursor.execute("DELETE FROM audit_auditevent WHERE sequence = 1")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            cursor.execute("UPDATE audit_auditevent SET action = 'x' WHERE sequence = 1")


def test_no_role_but_the_owner_holds_update_delete_or_truncate(chain: list[AuditEvent]) -> None:
    with schema_context("alpha"), connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.role_table_grants WHERE table_name = 'audit_auditevent' "
            "AND grantee = 'PUBLIC' AND privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')"
        )
        assert cursor.fetchone() == (0,)


def tamper(*statements: str) -> None:
    """What someone with the database's superuser could still do: switch the guard off and edit."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        for statement in statements:
            cursor.execute(statement)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")


TAMPERING = {
    "edit a field": (["UPDATE audit_auditevent SET resource_id = 'p-other' WHERE sequence = 3"], 3),
    "delete a row": (["DELETE FROM audit_auditevent WHERE sequence = 2"], 2),
    "insert a row": (
        [
            "UPDATE audit_auditevent SET sequence = sequence + 1000 WHERE sequence >= 3",
            "UPDATE audit_auditevent SET sequence = sequence - 999 WHERE sequence >= 1000",
            FORGED_ROW,
        ],
        3,
    ),
    "swap two rows": (
        [
            "UPDATE audit_auditevent SET sequence = -2 WHERE sequence = 2",
            "UPDATE audit_auditevent SET sequence = 2 WHERE sequence = 3",
            "UPDATE audit_auditevent SET sequence = 3 WHERE sequence = -2",
        ],
        2,
    ),
    "truncate the tail": (["DELETE FROM audit_auditevent WHERE sequence >= 4"], 4),
}


@pytest.mark.parametrize(("statements", "first_bad"), TAMPERING.values(), ids=TAMPERING.keys())
def test_tampering_is_caught_live_and_the_first_bad_entry_named(
    statements: list[str], first_bad: int, chain: list[AuditEvent]
) -> None:
    with schema_context("alpha"):
        checkpoint_create()  # the head (#5) is signed: a shortened tail cannot pass for the whole log
        tamper(*statements)

        result = verify_live()

    assert result.first_bad_sequence == first_bad, result.problem
    with pytest.raises(CommandError, match=f"broken at #{first_bad}"):
        call_command("audit_verify", "--community", "alpha", stdout=io.StringIO())


def test_a_rebuilt_chain_does_not_match_its_signed_checkpoint(chain: list[AuditEvent]) -> None:
    """Edit an entry and recompute every hash after it: the chain links, the checkpoint does not."""
    with schema_context("alpha"):
        checkpoint_create()
        tamper("DELETE FROM audit_auditevent WHERE sequence >= 4")
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_checkpoint DISABLE TRIGGER USER")
            cursor.execute("DELETE FROM audit_checkpoint")
            cursor.execute("ALTER TABLE audit_checkpoint ENABLE TRIGGER USER")
        assert verify_live().intact  # without a checkpoint, a cut tail is invisible: hence the checkpoints


def test_deleting_the_oldest_events_without_a_purge_is_caught(chain: list[AuditEvent]) -> None:
    with schema_context("alpha"):
        tamper("DELETE FROM audit_auditevent WHERE sequence <= 2")

        result = verify_live()

    assert result.first_bad_sequence == 1
    assert "no signed purge statement accounts for them" in result.problem


def test_audit_verify_reports_an_intact_chain(chain: list[AuditEvent]) -> None:
    with schema_context("alpha"):
        checkpoint_create()
        witness_publish_pending()  # what the commit would have done
    out = io.StringIO()

    call_command("audit_verify", "--community", "alpha", stdout=out)

    assert out.getvalue().strip() == (
        "audit chain of alpha: 5 entries intact, 1 signed checkpoints verified; witnessed through #5"
    )


def test_a_forged_checkpoint_signature_is_caught(chain: list[AuditEvent]) -> None:
    with schema_context("alpha"):
        checkpoint = checkpoint_create()
        assert checkpoint is not None
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_checkpoint DISABLE TRIGGER USER")
            cursor.execute(
                "UPDATE audit_checkpoint SET statement = replace(statement, '\"sequence\":5', '\"sequence\":4')"
            )
            cursor.execute("ALTER TABLE audit_checkpoint ENABLE TRIGGER USER")

        result = verify_live()

    assert not result.intact
    assert "signature does not verify" in result.problem
