"""``audit_purge --community alpha --before 2019-01-01T00:00:00Z``: drop events past retention, on record.

Refuses any cut inside the retention period (``AUDIT_RETENTION_DAYS``, at
least six years). The purge signs a checkpoint at the cut and appends an
``audit.purge`` event, so the shortened chain still verifies.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django_tenants.utils import schema_context

from core.commands import ApplicationCommand
from security.audit.retention import audit_purge
from security.audit.tasks import parse_time
from tenants.selectors import community_get


class Command(ApplicationCommand):
    """Purge audit events older than a time outside the retention period."""

    help = "Purge a community's audit events older than --before (refused inside the retention period)."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the options."""
        parser.add_argument("--community", required=True, help="a community's slug, or 'public'")
        parser.add_argument("--before", required=True, help="ISO 8601 time with offset")
        parser.add_argument("--operator", default="operator", help="who runs the purge (recorded)")

    def run(self, **options: Any) -> None:
        """Purge and report."""
        try:
            before = parse_time(options["before"])
        except ValueError as error:
            raise CommandError(str(error)) from None
        slug = options["community"]
        schema = "public" if slug == "public" else community_get(slug=slug).schema_name
        with schema_context(schema):
            purge = audit_purge(before=before, actor=f"command:{options['operator']}"[:64])
        if not purge.through:
            self.stdout.write(f"nothing in {slug} is older than {options['before']}")
            return
        self.stdout.write(
            f"purged {purge.events} events (through #{purge.through}) and {purge.decisions} decision records of {slug}"
        )
