"""``policy_record --community S --out FILE.jsonl``: export recorded decision inputs as a diff corpus."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.dateparse import parse_datetime
from django_tenants.utils import schema_context

from core.canonical import canonical_text
from core.commands import ApplicationCommand
from policy.models import DecisionRecord
from tenants.selectors import community_get


def _moment(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    moment = parse_datetime(value)
    if moment is None or moment.tzinfo is None:
        raise CommandError(f"{name} must be an ISO 8601 time with a zone, e.g. 2026-11-01T00:00:00Z")
    return moment


class Command(ApplicationCommand):
    """Write the inputs (never PHI: ids, roles, scopes, request metadata) of recorded decisions."""

    help = "Export recorded decision inputs of a community as JSON lines, for policy_diff."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --community, --since, --until, --limit, --out."""
        parser.add_argument("--community", required=True)
        parser.add_argument("--since", default=None)
        parser.add_argument("--until", default=None)
        parser.add_argument("--limit", type=int, default=10_000)
        parser.add_argument("--out", required=True)

    def run(self, **options: Any) -> None:
        """Export inputs, oldest first (identical inputs once)."""
        community = community_get(slug=options["community"])
        since, until = _moment(options["since"], "--since"), _moment(options["until"], "--until")
        written: set[str] = set()
        with schema_context(community.schema_name), Path(options["out"]).open("w", encoding="utf-8") as out:
            records = DecisionRecord.objects.all()
            if since:
                records = records.filter(created_at__gte=since)
            if until:
                records = records.filter(created_at__lt=until)
            for record in records.iterator(chunk_size=500):
                line = canonical_text(record.input)
                if line in written:  # a replayed request (same id, same second) counts once
                    continue
                written.add(line)
                out.write(line + "\n")
                if len(written) >= options["limit"]:
                    break
        self.stdout.write(f"wrote {len(written)} inputs from {community.slug} to {options['out']}")
        if not written:
            self.stderr.write("warning: no decisions recorded in that range")
