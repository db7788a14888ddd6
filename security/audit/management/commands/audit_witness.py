"""``audit_witness --community alpha --out FILE``: what the witness holds for a log, as the offline verifier reads it.

It reads the witness store (never the database): the latest witnessed
checkpoint and every witnessed purge statement, one JSON line each. With the
S3 witness an auditor may instead download the log's objects from the bucket
(``<prefix><slug>/``) and concatenate them: each object is one such line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from core.commands import ApplicationCommand
from security.audit.checkpoints import PLATFORM_LOG
from security.audit.witness import witness_log
from tenants.selectors import community_get


class Command(ApplicationCommand):
    """Write a log's witnessed statements (JSON Lines) for the offline verifier."""

    help = "Write what the audit witness holds for a community's log (JSON Lines) for auditors."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --community and --out."""
        parser.add_argument("--community", required=True, help="a community's slug, or 'public'")
        parser.add_argument("--out", type=Path, help="file to write (default: standard output)")

    def run(self, **options: Any) -> None:
        """Write the statements."""
        slug = options["community"]
        log = PLATFORM_LOG if slug == PLATFORM_LOG else community_get(slug=slug).schema_name
        text = "".join(item.line() for item in witness_log(log))
        out: Path | None = options["out"]
        if out is None:
            self.stdout.write(text, ending="")
            return
        out.write_text(text, encoding="utf-8")
        self.stdout.write(f"wrote {text.count(chr(10))} witnessed statements of {slug} to {out}")
