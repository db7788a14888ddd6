"""The restore test: the latest backup, restored into a scratch cluster, proves itself or the run fails.

Two restores of the latest base backup with all archived WAL:

1. to the backup's own restore point: every table's row count equals the
   count taken at that point; every community's audit chain (and the
   platform's) verifies against its checkpoints and the witness's checkpoints
   it reaches; a sample of every sealed field of every live community opens;
   no sealed value of a community offboarded since (its key destroyed) opens;
   each community's newest logical backup restores alone into a database of
   its own; and the first live community's restores as a new community in the
   scratch cluster (the runbook's procedure), its values sealed anew and opening;
2. to a moment between two writes made just now: the first is there, the
   second is not; and a canary community made just before the first write,
   given a participant and offboarded after the second (its keys destroyed),
   is in the copy with none of its sealed values opening.

The checks of a restored copy run in this process with Django's connection
pointed at the scratch cluster, and the data-key cache emptied before and
after, so nothing opened from the live database is reused.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context
from psycopg import conninfo, sql

from core.errors import ApplicationError
from core.schema import use_public_schema
from operations.backups import postgres
from operations.backups.base import archive_wal
from operations.backups.errors import BackupError
from operations.backups.logical import public_counts, restore_community, schema_counts
from operations.backups.rehome import restore_as_community
from operations.backups.restore import Target, restored
from operations.backups.store import BackupStore
from operations.models import RecoveryProbe
from security.audit.live import verify_restored
from services.participants.models import Participant
from services.studies.models import Study
from tenants.lifecycle import community_create, community_offboard
from tenants.models import Community, CommunityStatus
from vault import keys
from vault.errors import CiphertextIntegrityError, KeyDestroyed, KeyServiceUnavailable
from vault.fields import EncryptedField
from vault.providers import get_provider

ACTOR = "operator:restore-test"
SAMPLE_ROWS = 5
PROBE_GAP_SECONDS = 1.1
_CLOSED = (KeyDestroyed, KeyServiceUnavailable, CiphertextIntegrityError)


@dataclass
class Report:
    """What the restore test found: a line per check, and the failures."""

    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, passed: str, failed: str) -> None:
        """Record one check's outcome."""
        self.lines.append(("ok    " if ok else "FAIL  ") + (passed if ok else failed))
        if not ok:
            self.failures.append(failed)


@contextmanager
def _pointed_at(url: str) -> Iterator[None]:
    """Django's default connection on ``url`` (host, port, database) for the block; the key cache emptied."""
    target = conninfo.conninfo_to_dict(url)
    original = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST=target["host"], PORT=target["port"], NAME=target["dbname"])
    keys.cache.purge()
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(original)
        keys.cache.purge()


def _sealed_fields() -> list[tuple[Any, list[str]]]:
    """Every model with sealed fields, and their names."""
    found = []
    for model in apps.get_models():
        names = [item.name for item in model._meta.concrete_fields if isinstance(item, EncryptedField)]
        if names:
            found.append((model, names))
    return found


def open_sample(schema: str) -> tuple[int, int]:
    """Sealed values of a sample of ``schema``'s rows: (opened, refused)."""
    opened = refused = 0
    with schema_context(schema):
        for model, names in _sealed_fields():
            for row in model._default_manager.all()[:SAMPLE_ROWS]:
                for name in names:
                    try:
                        value = getattr(row, name)
                    except _CLOSED:
                        refused += 1
                        continue
                    opened += value is not None
    return opened, refused


def _check_counts(report: Report, url: str, expected: dict[str, int]) -> None:
    with postgres.connect(url) as restored_connection:
        found = postgres.table_counts(restored_connection)
    wrong = sorted(name for name in expected.keys() | found.keys() if expected.get(name) != found.get(name))
    report.check(
        not wrong,
        f"row counts: {len(found)} tables match the backup's point",
        f"row counts differ from the backup's point in {len(wrong)} tables ({', '.join(wrong[:3])})",
    )


def _check_restored_point(report: Report, url: str, manifest: dict[str, Any], shredded: set[str]) -> None:
    _check_counts(report, url, manifest["table_counts"])
    with _pointed_at(url):
        communities = list(Community.objects.order_by("slug").values_list("slug", "schema_name"))
        for slug, schema in [("public", "public"), *communities]:
            with schema_context(schema):
                result = verify_restored()
            report.check(
                result.intact,
                f"audit chain of {slug}: {result.checked} entries, {result.checkpoints} checkpoints",
                f"audit chain of {slug}: {result.problem}",
            )
        for slug, schema in communities:
            opened, refused = open_sample(schema)
            if slug in shredded:
                _check_shredded(report, f"offboarded {slug}", opened, refused, absent="has no sealed value to try")
            else:
                report.check(
                    refused == 0,
                    f"PHI of {slug}: {opened} sealed values of a sample open",
                    f"PHI of {slug}: {refused} sealed values of a sample do not open",
                )


def _canary_created(run: str) -> str:
    """A community of the restore test's own, with one participant's PHI sealed under its key; its slug."""
    slug = f"canary{run[-10:]}"
    community_create(slug=slug, name="Restore test canary", domain=f"{slug}.restore-test.localhost", actor_id=ACTOR)
    with schema_context(slug):
        study = Study.objects.create(title="Restore test canary", protocol_number=f"CANARY-{run[-10:]}")
        Participant.objects.create(study=study, given_name="Canary", family_name="Canary", city="Nowhere")
    return slug


def _canary_dropped(slug: str) -> None:
    """The canary's schema and rows go once the test is done (its lifecycle events stay in the platform's log)."""
    community = Community.objects.filter(slug=slug).first()
    if community is not None:
        community._drop_schema(force_drop=True)  # django-tenants' own drop, as the purge does
        community.delete()


def _check_shredded(report: Report, what: str, opened: int, refused: int, *, absent: str) -> None:
    """Crypto-shredding reached the copy: ``what``'s sealed values are there and none opens."""
    report.check(
        opened == 0 and refused > 0,
        f"crypto-shredding: none of {refused} sealed values of {what} opens",
        f"crypto-shredding: {opened} sealed values of {what} open from the backup" if opened
        else f"crypto-shredding: {what} {absent}",
    )  # fmt: skip


def _check_canary(report: Report, slug: str) -> None:
    opened, refused = open_sample(slug)
    _check_shredded(report, f"the offboarded canary {slug}", opened, refused, absent="is not in the restored copy")


def _check_logical(report: Report, url: str, store: BackupStore, shredded: set[str]) -> None:
    """Each community's newest logical backup, restored alone into a database of its own in the scratch cluster."""
    for slug, folders in sorted(store.community_backups().items()):
        folder = folders[-1]
        manifest = store.manifest_at(folder)
        schema = str(manifest["schema"])
        target = conninfo.make_conninfo(url, dbname=f"logical_{slug}")
        with postgres.connect(url) as scratch:
            scratch.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(f"logical_{slug}")))
        try:
            restore_community(store, folder, structure_from=url, into=target)
        except BackupError as error:
            report.check(False, "", f"logical backup of {slug}: {error}")
            continue
        found = schema_counts(target, schema) | public_counts(target)
        expected = {name: int(count) for name, count in dict(manifest["table_counts"]).items()}  # type: ignore[call-overload]
        wrong = sorted(name for name in expected if found.get(name) != expected[name])
        with _pointed_at(target):
            with schema_context(schema):
                chain = verify_restored()
            opened, refused = open_sample(schema)
        sealed_ok = (opened == 0 and refused > 0) if slug in shredded else refused == 0
        sealed = "nothing opens (offboarded)" if slug in shredded else f"{opened} sealed values open"
        report.check(
            not wrong and chain.intact and sealed_ok,
            f"logical backup of {slug} ({folder.rsplit('/', 1)[-1]}) restores alone: {len(expected)} tables' counts, "
            f"{chain.checked} chain entries, {sealed}",
            f"logical backup of {slug}: counts differ in {wrong[:3]}" if wrong else
            f"logical backup of {slug}: {chain.problem or 'sealed values do not behave as its key says'}",
        )  # fmt: skip


def _check_rehome(report: Report, url: str, store: BackupStore, shredded: set[str], run: str) -> None:
    """The runbook's restore of one community as a new one, done in the scratch cluster: its values open there."""
    sources = [slug for slug in sorted(store.community_backups()) if slug not in shredded]
    if not sources:
        return
    source, slug = sources[0], f"rehome{run[-10:]}"
    with _pointed_at(url):
        try:
            restored = restore_as_community(
                source=source, slug=slug, name="Restore test", domain=f"{slug}.restore-test.localhost",
                actor_id=ACTOR, store=store, server=url,
            )  # fmt: skip
            opened, refused = open_sample(slug)
        except (BackupError, ApplicationError) as error:
            report.check(False, "", f"{source} restored as a new community: {error}")
            return
        finally:
            get_provider().destroy_community_key(slug)  # the scratch cluster goes; so does the key made for it
    report.check(
        refused == 0,
        f"{source} restores as a new community: {sum(restored.rows.values())} rows, {restored.resealed} values "
        f"sealed anew under its key, {opened} of a sample open, {restored.seconds:.1f} s",
        f"{source} restored as a new community: {refused} of its values do not open",
    )


def _write_probes(run: str) -> str:
    """Write the 'before' probe, note the server's time, write the 'after' probe; return that time."""
    RecoveryProbe.objects.create(label=f"{run}-before")
    time.sleep(PROBE_GAP_SECONDS)
    with postgres.connect() as live:
        moment = live.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
    time.sleep(PROBE_GAP_SECONDS)
    RecoveryProbe.objects.create(label=f"{run}-after")
    return str(moment.isoformat())


def _check_point_in_time(report: Report, url: str, run: str) -> None:
    with postgres.connect(url) as restored_connection:
        rows = restored_connection.execute(
            "SELECT label FROM operations_recoveryprobe WHERE label LIKE %s", [f"{run}-%"]
        ).fetchall()
    labels = {row[0] for row in rows}
    report.check(
        labels == {f"{run}-before"},
        "point in time: the write before the target is there, the one after it is not",
        f"point in time: the restore holds {sorted(labels) or 'neither write'} (wanted only {run}-before)",
    )


def keep_report(lines: list[str], *, passed: bool) -> Path:
    """Write a run's report to ``BACKUP_REPORT_DIR/<UTC time>-passed|failed.txt``; its path."""
    folder = Path(settings.BACKUP_REPORT_DIR)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{timezone.now().strftime('%Y%m%dT%H%M%SZ')}-{'passed' if passed else 'failed'}.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def restore_test(store: BackupStore | None = None) -> Report:
    """Restore the latest backup twice and check it (see the module's docstring)."""
    store = store or BackupStore()
    backups = store.backups()
    if not backups:
        raise BackupError(f"no backup in {store.root}: run `make backup` first")
    backup_id = backups[-1]
    manifest = store.manifest(backup_id)
    shredded = set(Community.objects.filter(status=CommunityStatus.OFFBOARDED).values_list("slug", flat=True))
    run = f"restore-test-{uuid.uuid4().hex[:12]}"
    canary = _canary_created(run)
    try:
        moment = _write_probes(run)
        community_offboard(slug=canary, confirm=canary, actor_id=ACTOR)  # its keys destroyed after the moment
        archive_wal(store)
        report = Report([f"backup {backup_id}: {len(store.names('wal'))} WAL segments, {store.size()} sealed bytes"])
        with restored(backup_id, Target(name=str(manifest["restore_point"])), store) as copy:
            report.lines.append(f"restored to {manifest['restore_point']} in {copy.seconds:.1f} s")
            _check_restored_point(report, copy.url, manifest, shredded)
            _check_logical(report, copy.url, store, shredded)
            _check_rehome(report, copy.url, store, shredded, run)
        with restored(backup_id, Target(time=moment), store) as copy:
            report.lines.append(f"restored to {moment} in {copy.seconds:.1f} s")
            _check_point_in_time(report, copy.url, run)
            with _pointed_at(copy.url):
                _check_canary(report, canary)
    finally:
        use_public_schema()
        _canary_dropped(canary)
        RecoveryProbe.objects.filter(label__startswith=run).delete()
    return report
