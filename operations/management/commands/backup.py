"""``backup``: a base backup and the WAL after it (``make backup``), or only the WAL (``--wal-only``).

python manage.py backup             # base backup, counts, restore point, WAL through it
python manage.py backup --wal-only  # seal the WAL completed since the last run (every few minutes)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser

from core.commands import ApplicationCommand
from operations.backups.base import archive_wal, take_backup
from operations.backups.errors import BackupError
from operations.backups.logical import backed_up_communities, community_backup
from operations.backups.remote import BackupBucket, pull, push_if_configured
from operations.backups.store import BackupStore


class Command(ApplicationCommand):
    """Back the platform's database up into the sealed store."""

    help = "Take a base backup (or, with --wal-only, archive the WAL) into BACKUP_DIR, sealed."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --wal-only."""
        parser.add_argument("--wal-only", action="store_true", help="only seal the WAL completed since the last run")
        parser.add_argument("--community", help="only this community's logical backup")
        parser.add_argument("--pull-into", type=Path, help="download the off-site copy into this empty directory")

    def run(self, **options: Any) -> None:
        """Back up (or bring the off-site copy back) and say what was done."""
        store = BackupStore()
        try:
            if options["pull_into"]:
                count = pull(BackupBucket(), options["pull_into"])
                self.stdout.write(f"{count} files of the off-site copy in {options['pull_into']}")
                return
            self._back_up(store, options)
            pushed = push_if_configured(store)
        except (BackupError, ImproperlyConfigured) as error:
            raise CommandError(str(error)) from error
        if pushed is not None:
            self.stdout.write(f"off-site copy: {pushed[0]} files uploaded, {pushed[1]} removed")

    def _back_up(self, store: BackupStore, options: dict[str, Any]) -> None:
        if options["wal_only"]:
            sealed = archive_wal(store)
            self.stdout.write(f"{len(sealed)} WAL segments sealed into {store.root}")
            return
        if options["community"]:
            self._logical(store, options["community"])
            return
        backup = take_backup(store)
        for slug in backed_up_communities():
            self._logical(store, slug)
        self.stdout.write(
            f"base backup {backup.backup_id}: base {backup.sealed_bytes} sealed bytes, {len(backup.segments)} WAL "
            f"segments after it, restore point {backup.restore_point}, {backup.seconds:.1f} s; store {store.root}"
        )

    def _logical(self, store: BackupStore, slug: str) -> None:
        logical = community_backup(slug, store)
        self.stdout.write(
            f"logical backup of {slug}: {logical.folder}, {len(logical.counts)} tables, {logical.seconds:.1f} s"
        )
