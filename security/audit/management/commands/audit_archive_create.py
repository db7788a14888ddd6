"""``audit_archive_create --community alpha``: archive a community's audit trail now (offboarding does it itself).

For a community offboarded before archives existed, or whose log grew after
its archive was made: ``purge_offboarded_communities`` says when. Needs the
schema, the audit signing key and the archive key; not the community's key.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.commands import ApplicationCommand
from security.audit.archives import ArchiveError, audit_archive_create
from security.audit.staging import audit_append
from tenants.validators import validate_slug


class Command(ApplicationCommand):
    """Archive, verify, and record the archive in the platform's audit log."""

    help = "Archive a community's audit log, checkpoints and accounting of disclosures (signed, sealed, retained)."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --community."""
        parser.add_argument("--community", required=True, help="the community's slug")

    def run(self, **options: Any) -> None:
        """Archive and report."""
        slug = validate_slug(options["community"])
        try:
            archive = audit_archive_create(community=slug)
        except ArchiveError as error:
            raise CommandError(str(error)) from None
        audit_append(
            action="community.archive",
            resource_type="audit_archive",
            resource_id=archive.key,
            outcome="allow",
            actor_id="operator",
        )
        self.stdout.write(
            f"archived {slug} as {archive.key}: {archive.manifest['events']} events, "
            f"{archive.manifest['disclosures']} disclosures; kept until {archive.manifest['retain_until']}"
        )
