"""``purge_offboarded_communities``: drop the schemas of communities past their offboarding grace period.

A schema whose audit archive is missing or does not verify is kept, named on
standard error with the reason, and the command exits 1 so a scheduler sees it.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from core.commands import OperatorCommand
from tenants.lifecycle import communities_purge_offboarded


class Command(OperatorCommand):
    """Run daily (cron or a Celery beat schedule)."""

    help = "Drop schemas of communities offboarded longer ago than OFFBOARD_GRACE_DAYS whose audit archive verifies."

    def run(self, **options: Any) -> None:
        """Purge, list what was dropped, and fail naming every schema kept for want of a verified archive."""
        purged = communities_purge_offboarded(actor_id=self.actor_id)
        dropped = purged.dropped
        self.stdout.write(f"dropped {len(dropped)} schema(s)" + (": " + ", ".join(dropped) if dropped else ""))
        for slug, problem in purged.refused.items():
            self.stderr.write(f"kept the schema of {slug}: its audit archive cannot be relied on: {problem}")
        if purged.refused:
            raise CommandError(f"kept {len(purged.refused)} schema(s) without a verified audit archive")
