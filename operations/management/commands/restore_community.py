"""``restore_community``: one community's logical backup restored as a new community, sealed for it.

python manage.py restore_community --source alpha --slug alpha_restored --name "Alpha (restored)"
    --domain alpha-restored.localhost [--backup community/alpha/20261203T021500Z]
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser

from core.commands import OperatorCommand
from operations.backups.errors import BackupError
from operations.backups.proof import open_sample
from operations.backups.rehome import restore_as_community


class Command(OperatorCommand):
    """Restore a community's logical backup into a new community (docs/operations/backups.md)."""

    help = "Restore one community's logical backup (the newest, or --backup) as a new community."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --source, --slug, --name, --domain and --backup."""
        parser.add_argument("--source", required=True, help="the backed-up community's slug")
        parser.add_argument("--slug", required=True, help="the new community's slug (and schema)")
        parser.add_argument("--name", required=True, help="the new community's display name")
        parser.add_argument("--domain", required=True, help="the new community's host name")
        parser.add_argument("--backup", help="the backup's folder (community/<slug>/<time>); the newest by default")

    def run(self, **options: Any) -> None:
        """Restore, then open a sample of the new community's values, and say what was done."""
        try:
            restored = restore_as_community(
                source=options["source"], slug=options["slug"], name=options["name"], domain=options["domain"],
                actor_id=self.actor_id, folder=options["backup"],
            )  # fmt: skip
        except (BackupError, ImproperlyConfigured) as error:
            raise CommandError(str(error)) from error
        opened, refused = open_sample(restored.slug)
        if refused:
            raise CommandError(f"{refused} sealed values of {restored.slug} do not open: report this restore")
        for table, count in restored.rows.items():
            self.stdout.write(f"  {table}: {count} rows")
        self.stdout.write(
            f"restored {restored.source} ({restored.folder}) as {restored.slug}: {sum(restored.rows.values())} "
            f"rows, {restored.resealed} values sealed anew, {opened} of a sample open; {restored.seconds:.1f} s. "
            f"It has no members: add them with add_member."
        )
