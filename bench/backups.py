"""``make bench`` (backups): backup size and time, restore time, RPO and RTO, without and with a big community.

Measured on this machine's cluster (the test database and whatever else it
holds), first as it is, then with a scratch community of
``BENCH_BACKUP_PARTICIPANTS`` (100,000) participants, every PHI field sealed:

- backup: ``take_backup`` into a store of its own (base streamed and sealed,
  counts, restore point, WAL through it) - time and sealed bytes;
- restore (the RTO's part the platform controls): the base opened, the WAL
  replayed to the restore point, the server promoted and answering;
- RPO: with the WAL archived every ``BACKUP_WAL_SECONDS``, a write can be lost
  for that long plus one archive run, which is timed here after a write.

``python -m bench.backups`` (``BENCH_BACKUP_PARTICIPANTS``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.test.utils import setup_test_environment
from django_tenants.utils import schema_context

from bench import research  # django.setup() with the test settings
from bench.scratch import drop_scratch_community
from operations.backups import postgres
from operations.backups.base import archive_wal, drop_slot, take_backup
from operations.backups.restore import Target, restored
from operations.backups.store import BackupStore
from operations.models import RecoveryProbe
from services.participants.models import Participant
from services.studies.models import Study
from tenants.lifecycle import community_create

PARTICIPANTS = int(os.environ.get("BENCH_BACKUP_PARTICIPANTS", "100000"))
SLUG = "benchbackups"
BATCH = 2000


def seed(count: int) -> None:
    """The scratch community and ``count`` participants, each row as large as a sealed one.

    One participant is saved through the model (every PHI field sealed); the
    others are copies of its sealed values made by one INSERT ... SELECT, with
    ids, pseudonyms and blind indexes of their own (sealing 100,000 rows one by
    one takes most of an hour here). The copies do not open (each ciphertext is
    bound to its row): the backup and restore figures need their bytes, not
    their plaintext.
    """
    community_create(slug=SLUG, name="Backup bench", domain=f"{SLUG}.localhost", actor_id="operator:bench")
    with schema_context(SLUG):
        study = Study.objects.create(title="Backup bench", protocol_number="BENCH-BACKUP-01")
        template = Participant.objects.create(study=study, **research.phi(1))
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO participants_participant (id, pseudonym, given_name, family_name, date_of_birth, sex, "
                "mrn, email, phone, street_address, city, state, postal_code, mrn_index, email_index, created_at, "
                "updated_at, study_id, consent_scopes) "
                "SELECT gen_random_uuid(), substr(md5('p' || n), 1, 16), given_name, family_name, date_of_birth, "
                "sex, mrn, email, phone, street_address, city, state, postal_code, substr(md5('m' || n), 1, 44), "
                "substr(md5('e' || n), 1, 44), created_at, updated_at, study_id, consent_scopes "
                "FROM participants_participant, generate_series(2, %s) AS n WHERE id = %s",
                [count, template.pk],
            )


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


def main() -> None:
    """Measure without and with the big community; drop it, the stores and the slot."""
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0, keepdb=True)
    drop_scratch_community(SLUG)
    root = Path(tempfile.mkdtemp(prefix="cgw-bench-backups-"))
    try:
        measure("platform as it is", BackupStore(root / "before"))
        started = time.monotonic()
        seed(PARTICIPANTS)
        seconds = time.monotonic() - started
        print(
            f"seeded {PARTICIPANTS} participants (one sealed, the rest copies of its sealed bytes) in {seconds:.0f} s"
        )
        measure(f"with a community of {PARTICIPANTS} participants", BackupStore(root / "after"))
    finally:
        drop_scratch_community(SLUG)
        shutil.rmtree(root, ignore_errors=True)
        with postgres.connect() as live:
            drop_slot(live)


if __name__ == "__main__":
    main()
