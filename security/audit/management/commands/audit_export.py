r"""``audit_export``: write a community's audit events of a time range, and the signed manifest beside them.

    python manage.py audit_export --community alpha --since 2026-01-01T00:00:00Z \\
        --until 2026-07-01T00:00:00Z --format jsonl --out alpha-h1.jsonl

writes ``alpha-h1.jsonl`` and ``alpha-h1.jsonl.manifest.json`` (both 0600),
streaming: memory stays bounded whatever the range holds.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone
from django_tenants.utils import schema_context

from core.commands import ApplicationCommand
from security.audit.exports import export_to_path
from security.audit.models import AuditEvent, ExportFormat
from security.audit.progress import ProgressBar
from security.audit.sequencer import audit_chain
from security.audit.tasks import parse_time
from tenants.selectors import community_get


class Command(ApplicationCommand):
    """Export ``[since, until)`` as csv, jsonl or a FHIR R4 Bundle, with its signed manifest."""

    help = "Export a community's audit events of a time range, with a signed manifest."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the options."""
        parser.add_argument("--community", required=True, help="a community's slug, or 'public'")
        parser.add_argument("--since", required=True, help="ISO 8601 time with offset (inclusive)")
        parser.add_argument("--until", help="ISO 8601 time with offset (exclusive; default: now)")
        parser.add_argument("--format", choices=ExportFormat.values, default=ExportFormat.JSONL)
        parser.add_argument("--out", type=Path, required=True)

    def run(self, **options: Any) -> None:
        """Export and report what was written."""
        try:
            since = parse_time(options["since"])
            until = parse_time(options["until"]) if options["until"] else timezone.now()
        except ValueError as error:
            raise CommandError(str(error)) from None
        if not since < until <= timezone.now():
            raise CommandError("need since < until, and until not in the future")
        out: Path = options["out"]
        if out.exists():
            raise CommandError(f"{out} exists; choose another name")
        slug = options["community"]
        schema = "public" if slug == "public" else community_get(slug=slug).schema_name
        with schema_context(schema):
            audit_chain()
            total = AuditEvent.objects.filter(occurred_at__gte=since, occurred_at__lt=until).count()
            bar = ProgressBar(sys.stderr, total)
            written = export_to_path(out, kind=options["format"], since=since, until=until, progress=bar.advance)
            bar.finish()
        manifest = written.manifest
        self.stdout.write(
            f"wrote {manifest['count']} events (#{manifest['first_sequence']}..#{manifest['last_sequence']}), "
            f"{written.size} bytes, sha256 {manifest['sha256']} to {out}; manifest: {out}.manifest.json"
        )
