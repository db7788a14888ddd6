"""Attacks on the audit trail by someone who can rewrite the database (review finding 3).

Each test plays the database's owner or superuser: the append-only triggers
switched off inside the test's transaction, rows deleted, rewritten or copied
across schemas. What the database cannot reach is the witness (a directory
here, an Object Lock bucket in production) and the signing keys; each attack
is caught by the live verifier and ``audit_verify``, or by the offline
verifier given the witness's file, naming what is wrong.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from security.audit.checkpoints import checkpoint_at, checkpoint_create
from security.audit.exports import export_to_path
from security.audit.live import verify_live
from security.audit.offline import verify_files
from security.audit.retention import audit_purge, purge_statement_record
from security.audit.staging import audit_append
from security.audit.witness import witness_publish_pending
from tenants.models import Community
from tests.support.audit import recorded

AUDIT_TABLES = ("audit_auditevent", "audit_checkpoint", "audit_purgestatement")
LONG_AGO = datetime(2015, 1, 1, tzinfo=UTC)


def as_the_database_owner(*statements: str) -> None:
    """Switch the append-only guards off (rolled back with the test) and run ``statements``."""
    with connection.cursor() as cursor:
        for table in AUDIT_TABLES:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for statement in statements:
            cursor.execute(statement)
        for table in AUDIT_TABLES:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def append(count: int, *, start: datetime | None = None) -> None:
    for n in range(count):
        recorded(
            occurred_at=(start + timedelta(minutes=n)) if start else None,
            actor_id=f"u-{n}",
            action="participant.read",
            resource_type="participant",
            resource_id=f"p-{n}",
            outcome="allow",
        )


def witnessed_log(count: int) -> None:
    """``count`` events, a checkpoint over the head, and the witness holding it (as after the commit)."""
    append(count)
    checkpoint_create()
    witness_publish_pending()


def audit_verify_fails(slug: str, match: str) -> None:
    with pytest.raises(CommandError, match=match):
        call_command("audit_verify", "--community", slug, stdout=io.StringIO())


@pytest.fixture
def alpha_log(alpha: Community) -> Iterator[None]:
    with schema_context("alpha"):
        witnessed_log(5)
        yield


def test_cutting_the_tail_after_a_witnessed_checkpoint_and_its_checkpoint_is_caught(alpha_log: None) -> None:
    """Security review finding 3: delete the newest events and the checkpoints vouching for them."""
    as_the_database_owner("DELETE FROM audit_auditevent WHERE sequence >= 4", "DELETE FROM audit_checkpoint")

    result = verify_live()

    assert result.first_bad_sequence == 4
    assert result.problem == "missing: the witness vouches for #5 but the log ends at #3"
    audit_verify_fails("alpha", "broken at #4: missing: the witness vouches for #5 but the log ends at #3")


def test_wiping_the_whole_log_is_caught(alpha_log: None) -> None:
    """Security review finding 3: empty the log and its checkpoints, as if the community had done nothing."""
    as_the_database_owner("DELETE FROM audit_auditevent", "DELETE FROM audit_checkpoint")

    result = verify_live()

    assert result.problem == "missing: the witness vouches for #5 but the log is empty"
    audit_verify_fails("alpha", "the witness vouches for #5 but the log is empty")


def test_rewriting_a_range_and_its_checkpoints_is_caught(alpha_log: None) -> None:
    """Security review finding 3: cut from #3, drop the checkpoints, and let the service chain a new #3..#5."""
    as_the_database_owner("DELETE FROM audit_auditevent WHERE sequence >= 3", "DELETE FROM audit_checkpoint")
    append(3)  # a chain that links and hashes, with other content

    result = verify_live()

    assert result.first_bad_sequence == 5
    assert result.problem == "differs from the witnessed checkpoint at this sequence"
    audit_verify_fails("alpha", "broken at #5: differs from the witnessed checkpoint")


def test_a_checkpoint_copied_from_another_communitys_log_is_caught(alpha_log: None, beta: Community) -> None:
    """Security review finding 3: vouch for a rewritten log of beta with alpha's genuine, signed checkpoint."""
    with schema_context("beta"):
        append(5)
        as_the_database_owner(
            "INSERT INTO beta.audit_checkpoint (sequence, entry_hash, signed_at, key_id, statement, signature) "
            "SELECT sequence, entry_hash, signed_at, key_id, statement, signature FROM alpha.audit_checkpoint"
        )

        result = verify_live()

    assert result.first_bad_sequence == 5
    assert result.problem == "the checkpoint statement at #5 belongs to log 'alpha', not 'beta'"
    audit_verify_fails("beta", "belongs to log 'alpha', not 'beta'")


def test_a_checkpoint_renamed_to_another_community_does_not_verify_with_its_keys(alpha_log: None) -> None:
    """Security review finding 3: each community signs with its own key, so alpha's signature is no use to beta."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, signature, key_id FROM alpha.audit_checkpoint")
        statement, signature, kid = cursor.fetchone()
    with schema_context("beta"):
        append(5)
        renamed = statement.replace('"alpha"', '"beta"')
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO audit_checkpoint (sequence, entry_hash, signed_at, key_id, statement, signature) "
                "SELECT 5, entry_hash, now(), %s, %s, %s FROM audit_auditevent WHERE sequence = 5",
                [kid, renamed, signature],
            )

        result = verify_live()

    assert result.problem == f"checkpoint signature does not verify with key {kid}"


def test_a_purge_with_a_forged_purge_event_but_no_signed_statement_is_caught(alpha: Community) -> None:
    """Security review finding 3: delete the oldest events and append an ``audit.purge`` event to explain them."""
    with schema_context("alpha"):
        witnessed_log(5)
        checkpoint_at(2)  # a signed checkpoint at the forged cut, as the review's SQL used
        as_the_database_owner("DELETE FROM audit_auditevent WHERE sequence <= 2")
        audit_append(
            actor_id="command:operator", action="audit.purge", resource_type="audit", resource_id="2", outcome="allow"
        )

        result = verify_live()

    assert result.first_bad_sequence == 1
    assert result.problem == (
        "entries before #3 are missing and no signed purge statement accounts for them (purges: none)"
    )
    audit_verify_fails("alpha", "no signed purge statement accounts for them")


def test_a_purge_statement_cutting_inside_the_retention_period_is_caught(alpha: Community) -> None:
    """Security review finding 3: purge last week's events under a signed statement (the refusal bypassed)."""
    with schema_context("alpha"):
        witnessed_log(5)
        purge_statement_record(through=2, before=timezone.now() - timedelta(days=7))
        witness_publish_pending()
        as_the_database_owner("DELETE FROM audit_auditevent WHERE sequence <= 2")

        result = verify_live()

    assert result.first_bad_sequence == 2
    assert "the purge through #2 cut inside the 2196-day retention period" in result.problem
    audit_verify_fails("alpha", "cut inside the 2196-day retention period")


def test_deleting_the_purge_statement_of_a_real_purge_leaves_the_witness_copy(alpha: Community) -> None:
    """Security review finding 3: a genuine purge verifies from the witness even when its stored statement is gone."""
    with schema_context("alpha"):
        append(3, start=LONG_AGO)
        witnessed_log(2)
        purge = audit_purge(before=LONG_AGO + timedelta(days=1), actor="command:tester")
        witness_publish_pending()
        as_the_database_owner("DELETE FROM audit_purgestatement")

        result = verify_live()

    assert purge.through == 3
    assert result.intact, result.problem


def test_an_export_of_a_log_cut_after_a_witnessed_checkpoint_is_caught_offline(
    alpha: Community, tmp_path: Path
) -> None:
    """Security review finding 3: cut the tail, let the service sign the short head and export it for the auditor."""
    keys, witness, path = tmp_path / "keys.pem", tmp_path / "witness.jsonl", tmp_path / "alpha.jsonl"
    with schema_context("alpha"):
        append(30, start=LONG_AGO)
        checkpoint_create()
        witness_publish_pending()
        as_the_database_owner("DELETE FROM audit_auditevent WHERE sequence > 20", "DELETE FROM audit_checkpoint")
        export_to_path(path, kind="jsonl", since=LONG_AGO, until=LONG_AGO + timedelta(days=1))
    call_command("audit_keys", "--community", "alpha", "--out", str(keys), stdout=io.StringIO())
    call_command("audit_witness", "--community", "alpha", "--out", str(witness), stdout=io.StringIO())
    manifest = Path(f"{path}.manifest.json")

    without = verify_files(path, manifest, keys)
    result = verify_files(path, manifest, keys, witness=witness)

    assert without.intact  # the database alone still tells a consistent story: hence the witness
    assert result.first_bad_sequence == 21
    assert result.problem == "missing: the witness vouches for #30 but the log ended at #20"
    with pytest.raises(CommandError, match="the witness vouches for #30"):
        call_command("audit_verify", "--export", str(path), "--public-key", str(keys), "--witness", str(witness))


def test_an_export_of_a_rewritten_range_is_caught_offline(alpha: Community, tmp_path: Path) -> None:
    """Security review finding 3: rewrite #16 onwards, drop the checkpoints, and export through the rewrite."""
    keys, witness, path = tmp_path / "keys.pem", tmp_path / "witness.jsonl", tmp_path / "alpha.jsonl"
    with schema_context("alpha"):
        append(30, start=LONG_AGO)
        checkpoint_create()
        witness_publish_pending()
        as_the_database_owner("DELETE FROM audit_auditevent WHERE sequence > 15", "DELETE FROM audit_checkpoint")
        append(20, start=LONG_AGO + timedelta(minutes=15))
        export_to_path(path, kind="jsonl", since=LONG_AGO, until=LONG_AGO + timedelta(days=1))
    call_command("audit_keys", "--community", "alpha", "--out", str(keys), stdout=io.StringIO())
    call_command("audit_witness", "--community", "alpha", "--out", str(witness), stdout=io.StringIO())

    result = verify_files(path, Path(f"{path}.manifest.json"), keys, witness=witness)

    assert result.first_bad_sequence == 30
    assert result.problem == "differs from the witnessed checkpoint at this sequence"


def test_an_export_starting_after_a_forged_purge_is_caught_offline(alpha: Community, tmp_path: Path) -> None:
    """Security review finding 3: delete the oldest events, forge the purge event, export from the new start."""
    keys, path = tmp_path / "keys.pem", tmp_path / "alpha.jsonl"
    with schema_context("alpha"):
        append(10, start=LONG_AGO)
        checkpoint_at(4)  # what a real purge signs at its cut, and what the forger needs as the new start
        checkpoint_create()
        as_the_database_owner("DELETE FROM audit_auditevent WHERE sequence <= 4")
        audit_append(actor_id="command:operator", action="audit.purge", resource_type="audit", resource_id="4",
                     outcome="allow")  # fmt: skip
        export_to_path(path, kind="jsonl", since=LONG_AGO, until=LONG_AGO + timedelta(days=1))
    call_command("audit_keys", "--community", "alpha", "--out", str(keys), stdout=io.StringIO())
    manifest = json.loads(Path(f"{path}.manifest.json").read_text())

    result = verify_files(path, Path(f"{path}.manifest.json"), keys)

    assert manifest["purges"] == []
    assert result.first_bad_sequence == 1
    assert result.problem == (
        "entries before #5 are missing and no signed purge statement accounts for them (purges: none)"
    )
