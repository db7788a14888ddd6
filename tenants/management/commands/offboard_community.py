"""``offboard_community --slug alpha --confirm alpha``: archive the audit trail, then crypto-shred the community."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from core.commands import OperatorCommand
from tenants.lifecycle import community_offboard


class Command(OperatorCommand):
    """Offboard: audit trail archived and keys destroyed now, schema dropped after OFFBOARD_GRACE_DAYS."""

    help = (
        "Offboard a community: archive its audit trail, destroy its keys now (its data becomes unreadable); "
        "drop its schema later."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --slug and --confirm."""
        parser.add_argument("--slug", required=True)
        parser.add_argument("--confirm", required=True, help="the slug again: there is no undo")

    def run(self, **options: Any) -> None:
        """Offboard and say what happens next."""
        community = community_offboard(slug=options["slug"], confirm=options["confirm"], actor_id=self.actor_id)
        self.stdout.write(
            f"community {community.slug} is offboarded: its audit trail is archived "
            f"(audit_archive_open --community {community.slug}); its keys are destroyed and its data unreadable; "
            f"its schema is dropped after {settings.OFFBOARD_GRACE_DAYS} days (purge_offboarded_communities)"
        )
