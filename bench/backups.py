"""``make bench`` (backups): backup size and time, restore time, RPO and RTO, without and with a big community.

Measured on this machine's cluster (the test database and whatever else it
holds), first as it is, then with a scratch community of
``BENCH_BACKUP_PARTICIPANTS`` (100,000) participants, every PHI field sealed
for its row:

- backup: ``take_backup`` into a store of its own (base streamed and sealed,
  counts, restore point, WAL through it) - time and sealed bytes;
- restore (the RTO's part the platform controls): the base opened, the WAL
  replayed to the restore point, the server promoted and answering;
- RPO: with the WAL archived every ``BACKUP_WAL_SECONDS``, a write can be lost
  for that long plus one archive run, which is timed here after a write;
- the big community's logical backup, and its restore as a new community
  (docs/operations/backups.md: every value opened and sealed anew).

``python -m bench.backups`` (``BENCH_BACKUP_PARTICIPANTS``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.test.utils import setup_test_environment
from django_tenants.utils import schema_context
from psycopg import sql

from bench import research  # django.setup() with the test settings
from bench.scratch import drop_scratch_community
from operations.backups import postgres
from operations.backups.base import archive_wal, drop_slot, take_backup
from operations.backups.logical import community_backup
from operations.backups.proof import open_sample
from operations.backups.rehome import restore_as_community
from operations.backups.restore import Target, restored
from operations.backups.store import BackupStore
from operations.models import RecoveryProbe
from services.participants.models import Participant
from services.studies.models import Study
from tenants.lifecycle import community_create
from vault.fields import BlindIndexField, EncryptedField
from vault.keys import index_keys, write_key

PARTICIPANTS = int(os.environ.get("BENCH_BACKUP_PARTICIPANTS", "100000"))
SLUG = "benchbackups"
COPY = "benchbackups_copy"
LABEL = EncryptedField.model_label(Participant)
BATCH = 2000


def seed(count: int) -> None:
    """The scratch community and ``count`` participants, every PHI value sealed for its own row.

    One participant is saved through the model; the others are written by one
    COPY, their values sealed and indexed here in bulk with the community's
    keys (through the model, 100,000 rows take most of an hour here), so they
    open as any participant's do.
    """
    community_create(slug=SLUG, name="Backup bench", domain=f"{SLUG}.localhost", actor_id="operator:bench")
    with schema_context(SLUG):
        study = Study.objects.create(title="Backup bench", protocol_number="BENCH-BACKUP-01")
        template = Participant.objects.create(study=study, **research.phi(1))
        _sealed_copies(template, count - 1)


def _phi(number: int) -> dict[str, Any]:
    """:func:`bench.research.phi` of a number below 1,000 (birth dates stay in range), MRN and email unique."""
    return research.phi(number % 1000) | {"mrn": f"MRN-{number:07d}", "email": f"p{number}@example.org"}


class _Sealer:
    """Seals one participant's values as :meth:`EncryptedField.pre_save` does, and indexes them, in bulk."""

    def __init__(self) -> None:
        self.version, self.cipher = write_key(SLUG)
        self.index_version, self.index_key = index_keys(SLUG)[0]
        fields = Participant._meta.concrete_fields
        self.sealed = [item for item in fields if isinstance(item, EncryptedField)]
        self.indexes = [item for item in fields if isinstance(item, BlindIndexField)]

    def values(self, row: str, phi: dict[str, Any]) -> dict[str, str | None]:
        """Column -> value of every sealed and blind index column of the participant ``row``."""
        found: dict[str, str | None] = {}
        for item in self.sealed:
            plain = phi.get(item.name)
            found[str(item.column)] = None if plain is None else str(item.seal_for(
                self.cipher, item.to_bytes(plain), community=SLUG, model=LABEL, row=row, version=self.version
            ))  # fmt: skip
        for index in self.indexes:
            found[str(index.column)] = index.digest(bytes(self.index_key), self.index_version, str(phi[index.source]))
        return found


def _sealed_copies(template: Participant, count: int) -> None:
    """``count`` participants like ``template``, each sealed for its own row, by one COPY."""
    table, sealer = sql.Identifier(Participant._meta.db_table), _Sealer()
    # One transaction, begun by a statement through Django's cursor (which sets the community's search_path for
    # it): the driver's own cursor, for COPY, then runs in the community's schema too.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(table).as_string(cursor.cursor))
        raw = cursor.cursor
        columns = [str(column.name) for column in raw.description or ()]
        with raw.copy(sql.SQL("COPY (SELECT * FROM {} WHERE id = %s) TO STDOUT").format(table), [template.pk]) as out:
            (template_row,) = list(out.rows())  # read to its end: the connection is free again after the block
        model = dict(zip(columns, template_row, strict=True))
        with raw.copy(sql.SQL("COPY {} FROM STDIN").format(table)) as copy:
            for number in range(2, count + 2):
                row = str(uuid.uuid4())
                values = model | {"id": row, "pseudonym": f"{number:016x}"} | sealer.values(row, _phi(number))
                copy.write_row([values[column] for column in columns])


def cluster_bytes() -> int:
    """Bytes of every database of the cluster."""
    with postgres.connect() as live:
        return int(live.execute("SELECT sum(pg_database_size(datname)) FROM pg_database").fetchone()[0])  # type: ignore[index]


def measure(label: str, store: BackupStore) -> None:
    """One backup, one restore to its point, one timed WAL archive run after a write; print the figures."""
    size = cluster_bytes()
    backup = take_backup(store)
    with restored(backup.backup_id, Target(name=backup.restore_point), store) as copy:
        restore_seconds = copy.seconds
        with postgres.connect(copy.url) as restored_connection:
            found = restored_connection.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = 'participants_participant'",
                [SLUG],
            ).fetchone()[0]  # type: ignore[index]
    RecoveryProbe.objects.create(label=f"bench-{backup.backup_id}")
    started = time.monotonic()
    archive_wal(store)
    archive_seconds = time.monotonic() - started
    RecoveryProbe.objects.filter(label=f"bench-{backup.backup_id}").delete()
    print(
        f"{label}: cluster {size / 1e6:.0f} MB; backup {backup.seconds:.1f} s, base {backup.sealed_bytes / 1e6:.0f} MB "
        f"sealed + {len(backup.segments)} WAL segments; restore to its point {restore_seconds:.1f} s"
        f"{' (the community is there)' if found else ''}; one WAL archive run {archive_seconds:.1f} s -> "
        f"RPO at most {settings.BACKUP_WAL_SECONDS + archive_seconds:.0f} s (BACKUP_WAL_SECONDS "
        f"{settings.BACKUP_WAL_SECONDS}), RTO about {restore_seconds:.0f} s plus the restore test's checks"
    )


def measure_rehome(store: BackupStore) -> None:
    """The big community's logical backup, then restored as a new community (every value sealed anew); print."""
    logical = community_backup(SLUG, store)
    restored = restore_as_community(source=SLUG, slug=COPY, name="Backup bench copy", domain="bench-copy.localhost",
                                    actor_id="operator:bench", store=store)  # fmt: skip
    opened, refused = open_sample(COPY)
    print(
        f"logical backup of the community: {logical.seconds:.1f} s; restored as a new community in "
        f"{restored.seconds:.1f} s ({sum(restored.rows.values())} rows, {restored.resealed} values sealed anew, "
        f"{restored.resealed / restored.seconds:.0f} values/s); of a sample {opened} open, {refused} do not"
    )


def main() -> None:
    """Measure without and with the big community; drop it, the stores and the slot."""
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0, keepdb=True)
    drop_scratch_community(SLUG)
    drop_scratch_community(COPY)
    root = Path(tempfile.mkdtemp(prefix="cgw-bench-backups-"))
    try:
        measure("platform as it is", BackupStore(root / "before"))
        started = time.monotonic()
        seed(PARTICIPANTS)
        seconds = time.monotonic() - started
        print(f"seeded {PARTICIPANTS} participants (every value sealed for its row, by one COPY) in {seconds:.0f} s")
        measure(f"with a community of {PARTICIPANTS} participants", BackupStore(root / "after"))
        measure_rehome(BackupStore(root / "rehome"))
    finally:
        drop_scratch_community(SLUG)
        drop_scratch_community(COPY)
        shutil.rmtree(root, ignore_errors=True)
        with postgres.connect() as live:
            drop_slot(live)


if __name__ == "__main__":
    main()
