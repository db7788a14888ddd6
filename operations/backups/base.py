"""Taking a backup: the WAL archived from a replication slot, a base backup streamed into the store, counts.

The slot (``BACKUP_SLOT``) makes the server keep every WAL segment until
:func:`archive_wal` has sealed it, so nothing between two runs is lost; the
base backup is streamed from ``pg_basebackup`` straight into the sealing
writer (its plain bytes never touch the disk). Right after it, the rows of
every table are counted in the snapshot of the statement that makes a named
restore point: a restore to that point must find those counts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django_tenants.utils import schema_context
from psycopg import IsolationLevel, conninfo

from operations.backups import postgres
from operations.backups.retention import apply_retention
from operations.backups.store import BackupStore, chunks_of
from security.audit.sequencer import audit_chain
from tenants.models import Community

_SEGMENT = re.compile(r"[0-9A-F]{24}|[0-9A-F]{8}\.history")


@dataclass(frozen=True)
class BaseBackup:
    """What one run of :func:`take_backup` made."""

    backup_id: str
    restore_point: str
    sealed_bytes: int
    seconds: float
    segments: list[str]


def slot_name() -> str:
    """``BACKUP_SLOT``, else ``backup_`` and the database's name (a slot is the cluster's, a name per database)."""
    if settings.BACKUP_SLOT:
        return str(settings.BACKUP_SLOT)
    database = str(conninfo.conninfo_to_dict(postgres.server_url()).get("dbname") or "postgres")
    return "backup_" + re.sub(r"[^a-z0-9_]", "_", database.lower())[:50]


def ensure_slot(connection: Any) -> None:
    """Create the backup's physical replication slot (reserving WAL now) unless it exists."""
    slot = slot_name()
    if connection.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [slot]).fetchone() is None:
        connection.execute("SELECT pg_create_physical_replication_slot(%s, true)", [slot])


def drop_slot(connection: Any, name: str | None = None) -> None:
    """Drop the backup's slot (or the slot ``name``) if it exists: the server keeps no more WAL for it."""
    connection.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
        [name or slot_name()],
    )


def archive_wal(store: BackupStore | None = None) -> list[str]:
    """Seal every WAL segment completed so far into the store; returns the names sealed now.

    The current segment is closed first (``pg_switch_wal``), ``pg_receivewal``
    fetches from the slot up to that point into the spool, and each complete
    segment (and timeline history file) is sealed, then removed from the spool.
    """
    store = store or BackupStore()
    spool = Path(settings.BACKUP_SPOOL_DIR)
    spool.mkdir(parents=True, exist_ok=True, mode=0o700)
    with postgres.connect() as connection:
        ensure_slot(connection)
        connection.execute("SELECT pg_switch_wal()")
        end = str(connection.execute("SELECT pg_current_wal_lsn()").fetchone()[0])  # type: ignore[index]
        # A record past the end position, so pg_receivewal stops at once (it stops on receiving WAL beyond it).
        connection.execute("SELECT pg_logical_emit_message(false, 'gateway-backup', 'wal archived')")
    postgres.run([
        postgres.tool("pg_receivewal"), "--dbname", postgres.server_url(), "--directory", str(spool),
        "--slot", slot_name(), "--endpos", end, "--no-loop", "--no-password", "--synchronous",
    ])  # fmt: skip
    sealed = []
    for path in sorted(spool.iterdir()):
        if not _SEGMENT.fullmatch(path.name):
            continue  # a .partial segment: the next run completes it
        name = f"wal/{path.name}"
        if not store.has(name):
            store.put(name, _file_chunks(path))
            sealed.append(name)
        path.unlink()
    return sealed


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from chunks_of(handle)


def chain_staged() -> int:
    """Chain every log's staged events (the platform's and each community's); how many were chained.

    A backup then holds them as chain entries its restore can verify, not as
    staged rows that only a later chaining would vouch for (any reader of the
    log may chain: :mod:`security.audit.sequencer`).
    """
    chained = 0
    for schema in ["public", *Community.objects.order_by("schema_name").values_list("schema_name", flat=True)]:
        with schema_context(schema):
            chained += audit_chain()
    return chained


def take_backup(store: BackupStore | None = None) -> BaseBackup:
    """A base backup of the whole cluster into the store, its manifest, and the WAL that makes it consistent."""
    store = store or BackupStore()
    started = time.monotonic()
    chain_staged()
    now = datetime.now(UTC)
    backup_id = now.strftime("%Y%m%dT%H%M%SZ")
    archive_wal(store)  # the slot exists before the backup starts: its WAL is kept
    with postgres.connect() as connection:
        start_wal = str(connection.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()[0])  # type: ignore[index]
    command = [
        postgres.tool("pg_basebackup"), "--dbname", postgres.server_url(), "--pgdata", "-", "--format", "tar",
        "--wal-method", "none", "--checkpoint", "fast", "--no-password", "--label", f"gateway {backup_id}",
    ]  # fmt: skip
    with postgres.output_of(command) as tar:
        record = store.put(f"base/{backup_id}/base.tar", tar)
    restore_point = f"gateway-backup-{backup_id}"
    with postgres.connect() as connection:
        # The counts read the snapshot the restore point's own statement took (the first of a repeatable-read
        # transaction): what a restore to that point holds, give or take a commit in that very instant.
        connection.autocommit = False
        connection.isolation_level = IsolationLevel.REPEATABLE_READ
        with connection.transaction():
            point_lsn = str(connection.execute("SELECT pg_create_restore_point(%s)", [restore_point]).fetchone()[0])  # type: ignore[index]
            counts = postgres.table_counts(connection)
        end_wal = str(connection.execute("SELECT pg_walfile_name(%s::pg_lsn)", [point_lsn]).fetchone()[0])  # type: ignore[index]
        server = str(connection.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    segments = archive_wal(store)  # through the restore point: the backup can be restored to it
    manifest: dict[str, object] = {
        "backup_id": backup_id,
        "started_at": now.isoformat(),
        "server_version": server,
        "restore_point": restore_point,
        "restore_point_lsn": point_lsn,
        "start_wal": start_wal,
        "end_wal": end_wal,
        "base": record.name,
        "table_counts": counts,
    }
    store.write_manifest(backup_id, manifest)
    apply_retention(store)
    return BaseBackup(backup_id, restore_point, store.sealed_size(record.name), time.monotonic() - started, segments)
