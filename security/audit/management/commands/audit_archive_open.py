"""``audit_archive_open --community alpha --to DIR``: unseal a community's audit archive for an auditor.

    python manage.py audit_archive_open --community alpha --to alpha-archive/
    python -m security.audit.offline alpha-archive/audit.jsonl alpha-archive/audit.jsonl.manifest.json audit-keys.pem
    python -m security.audit.offline_archive alpha-archive/ audit-keys.pem

Needs the key provider (the archive key unwraps the archive's data key) and
the archive store, not the database: it works after the community's schema
is dropped. What it writes needs nothing to verify but the public keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.commands import ApplicationCommand
from security.audit.archives import ArchiveError, audit_archive_open
from tenants.validators import validate_slug


class Command(ApplicationCommand):
    """Unseal the newest (or a named) archive of a community into an empty directory."""

    help = "Unseal a community's offboarding audit archive into a directory, for offline verification."
    requires_system_checks: list[str] = []  # the community's schema and row may be long gone

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --community, --to and --key."""
        parser.add_argument("--community", required=True, help="the community's slug")
        parser.add_argument("--to", type=Path, required=True, help="an empty (or new) directory")
        parser.add_argument("--key", help="an archive's key in the store (default: the community's newest)")

    def run(self, **options: Any) -> None:
        """Unseal and say what to run next."""
        slug = validate_slug(options["community"])
        try:
            archive = audit_archive_open(community=slug, to=options["to"], key=options["key"])
        except ArchiveError as error:
            raise CommandError(str(error)) from None
        manifest = archive.manifest
        self.stdout.write(
            f"opened {archive.key} into {options['to']}: {manifest.get('events')} events, "
            f"{manifest.get('checkpoints')} checkpoints, {manifest.get('disclosures')} disclosures of "
            f"{manifest.get('participants')} participants; kept until {manifest.get('retain_until')}. Verify with: "
            f"python -m security.audit.offline_archive {options['to']} audit-keys.pem"
        )
