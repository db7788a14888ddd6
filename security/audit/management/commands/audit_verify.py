"""``audit_verify --community alpha``: check a community's live audit chain; non-zero naming the first bad entry."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django_tenants.utils import schema_context

from gateway.commands import ApplicationCommand
from security.audit.chain import verify_live
from tenants.selectors import community_get


class Command(ApplicationCommand):
    """Verify the live hash chain (exports and offline verification come with the audit issue)."""

    help = "Verify a community's audit chain in the database."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --community."""
        parser.add_argument("--community", required=True)

    def run(self, **options: Any) -> None:
        """Verify and report."""
        community = community_get(slug=options["community"])
        with schema_context(community.schema_name):
            result = verify_live()
        if not result.intact:
            raise CommandError(
                f"audit chain of {community.slug} broken at #{result.first_bad_sequence}: {result.problem}"
            )
        self.stdout.write(f"audit chain of {community.slug}: {result.checked} entries intact")
