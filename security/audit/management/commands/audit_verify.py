"""``audit_verify``: check a community's live chain, or an export offline (no database, no network).

    python manage.py audit_verify --community alpha
    python manage.py audit_verify --export FILE --manifest FILE.manifest.json --public-key audit-keys.pem \
        [--witness witness.jsonl]

The live check reads the witness store itself; the offline one takes the
witness's statements as a file (``audit_witness`` writes it).

Exits 0 when everything checks out; otherwise non-zero, naming the first bad
sequence number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django_tenants.utils import schema_context

from core.commands import ApplicationCommand
from security.audit.live import verify_live
from security.audit.offline import Verification, verify_files
from tenants.selectors import community_get


class Command(ApplicationCommand):
    """Verify the live hash chain and its checkpoints, or an export against its signed manifest."""

    help = "Verify a community's audit chain in the database, or an audit export offline."
    requires_system_checks: list[str] = []  # offline verification must not need the database

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --community, or --export with --manifest and --public-key."""
        parser.add_argument("--community", help="verify this community's live chain ('public': the platform's)")
        parser.add_argument("--export", type=Path, help="an export file")
        parser.add_argument("--manifest", type=Path, help="its manifest (default: FILE.manifest.json)")
        parser.add_argument("--public-key", type=Path, help="the audit public keys (PEM), obtained independently")
        parser.add_argument("--witness", type=Path, help="the witness's statements of the log (JSON Lines)")

    def run(self, **options: Any) -> None:
        """Verify and report."""
        if options["export"] is not None:
            self._offline(options["export"], options["manifest"], options["public_key"], options["witness"])
        elif options["community"]:
            self._live(options["community"])
        else:
            raise CommandError("give --community, or --export with --public-key")

    def _live(self, slug: str) -> None:
        schema = "public" if slug == "public" else community_get(slug=slug).schema_name
        with schema_context(schema):
            result = verify_live()
        self._report(f"audit chain of {slug}", result)

    def _offline(self, export: Path, manifest: Path | None, public_key: Path | None, witness: Path | None) -> None:
        if public_key is None:
            raise CommandError("--public-key is required: the keys must come from somewhere other than the export")
        manifest = manifest or Path(f"{export}.manifest.json")
        for path in (export, manifest, public_key, witness):
            if path is not None and not path.is_file():
                raise CommandError(f"{path} is not a file")
        self._report(f"export {export.name}", verify_files(export, manifest, public_key, witness=witness))

    def _report(self, what: str, result: Verification) -> None:
        if not result.intact:
            raise CommandError(result.verdict(what))
        self.stdout.write(result.verdict(what))
