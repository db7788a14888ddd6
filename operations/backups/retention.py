"""How long backups are kept: the daily ones ``BACKUP_RETENTION_DAYS``, the first of each month much longer.

Each run of :func:`apply_retention` (after every base backup):

1. copies the first base backup of every month, with the WAL that makes it
   consistent (from its start through its restore point), into the archive
   store (``BACKUP_ARCHIVE_DIR``), unless it is there already;
2. removes the daily base backups older than ``BACKUP_RETENTION_DAYS`` (never
   the newest one);
3. removes the WAL older than the oldest base backup kept (the restores it
   could serve are gone with that backup);
4. removes each community's logical backups older than
   ``BACKUP_RETENTION_DAYS`` (never its newest);
5. removes the archive store's monthly backups older than
   ``BACKUP_ARCHIVE_RETENTION_DAYS``, and the WAL no kept one needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from operations.backups.store import BackupStore


@dataclass
class Pruned:
    """What one run of :func:`apply_retention` did."""

    archived: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    wal_removed: int = 0
    archive_removed: list[str] = field(default_factory=list)


def _started(store: BackupStore, backup_id: str) -> datetime:
    return datetime.fromisoformat(str(store.manifest(backup_id)["started_at"]))


def _segment(name: str) -> str:
    return name.removeprefix("wal/")


def wal_of(store: BackupStore, backup_id: str) -> list[str]:
    """The WAL objects a base backup needs to reach its restore point (and every timeline history)."""
    manifest = store.manifest(backup_id)
    start, end = str(manifest.get("start_wal", "")), str(manifest.get("end_wal", "~"))
    return [name for name in store.names("wal") if name.endswith(".history") or start <= _segment(name) <= end]


def _archive_monthly(store: BackupStore, archive: BackupStore, pruned: Pruned) -> None:
    firsts: dict[str, str] = {}
    for backup_id in store.backups():
        firsts.setdefault(_started(store, backup_id).strftime("%Y-%m"), backup_id)
    kept = set(archive.backups())
    for backup_id in firsts.values():
        if backup_id in kept:
            continue
        for name in [*store.names(f"base/{backup_id}"), *wal_of(store, backup_id)]:
            if not archive.has(name):
                store.copy_to(archive, name)
        archive.write_manifest(backup_id, store.manifest(backup_id))  # last: the copy is complete
        pruned.archived.append(backup_id)


def _remove_old(store: BackupStore, cutoff: datetime, removed: list[str]) -> None:
    backups = store.backups()
    for backup_id in backups[:-1]:  # the newest stays, however old
        if _started(store, backup_id) < cutoff:
            store.delete_backup(backup_id)
            removed.append(backup_id)


def _remove_old_logical(store: BackupStore, cutoff: datetime, removed: list[str]) -> None:
    for folders in store.community_backups().values():
        for folder in folders[:-1]:  # each community's newest stays
            taken = datetime.strptime(folder.rsplit("/", 1)[-1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            if taken < cutoff:
                store.delete_folder(folder)
                removed.append(folder)


def _remove_unneeded_wal(store: BackupStore, *, everything_after_oldest: bool) -> int:
    backups = store.backups()
    if not backups:
        return 0
    needed: set[str] = set()
    if not everything_after_oldest:
        for backup_id in backups:
            needed.update(wal_of(store, backup_id))
    oldest = min(str(store.manifest(backup_id).get("start_wal", "")) for backup_id in backups)
    count = 0
    for name in store.names("wal"):
        if name.endswith(".history"):
            continue
        stale = _segment(name) < oldest if everything_after_oldest else name not in needed
        if stale:
            store.delete(name)
            count += 1
    return count


def apply_retention(
    store: BackupStore | None = None, archive: BackupStore | None = None, *, now: datetime | None = None
) -> Pruned:
    """Archive the months' first backups, then remove what is past its retention (see the module's docstring)."""
    store = store or BackupStore()
    archive = archive or BackupStore(settings.BACKUP_ARCHIVE_DIR)
    now = now or timezone.now()
    pruned = Pruned()
    _archive_monthly(store, archive, pruned)
    _remove_old(store, now - timedelta(days=settings.BACKUP_RETENTION_DAYS), pruned.removed)
    # The daily store keeps every segment from its oldest backup on: any moment since can be restored.
    pruned.wal_removed = _remove_unneeded_wal(store, everything_after_oldest=True)
    _remove_old_logical(store, now - timedelta(days=settings.BACKUP_RETENTION_DAYS), pruned.removed)
    _remove_old(archive, now - timedelta(days=settings.BACKUP_ARCHIVE_RETENTION_DAYS), pruned.archive_removed)
    # The archive keeps only what its backups need to reach their restore points.
    _remove_unneeded_wal(archive, everything_after_oldest=False)
    return pruned
