"""``purge_offboarded_communities``: drop the schemas of communities past their offboarding grace period."""

from __future__ import annotations

from typing import Any

from core.commands import OperatorCommand
from tenants.lifecycle import communities_purge_offboarded


class Command(OperatorCommand):
    """Run daily (cron or a Celery beat schedule)."""

    help = "Drop schemas of communities offboarded longer ago than OFFBOARD_GRACE_DAYS."

    def run(self, **options: Any) -> None:
        """Purge and list."""
        purged = communities_purge_offboarded(actor_id=self.actor_id)
        self.stdout.write(f"dropped {len(purged)} schema(s)" + (": " + ", ".join(purged) if purged else ""))
