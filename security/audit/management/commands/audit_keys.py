"""``audit_keys --community alpha --out FILE``: the public keys that verify a log's checkpoints and manifests, as PEM.

Each community's log has a signing key of its own; the file holds every
version of it and of the shared key that signed the community's statements
before communities had keys of their own (``--community public``: the
platform's log, whose key is the shared one). Give this file to auditors
through a channel apart from any export (or let them fetch
``GET /api/v1/audit/keys/`` on the community's host), so that a forged export
cannot bring its own key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.commands import ApplicationCommand
from security.audit.checkpoints import PLATFORM_LOG, public_keys_pem
from tenants.selectors import community_get


class Command(ApplicationCommand):
    """Write every published audit public key (all versions) of one log as PEM."""

    help = "Write a community's audit signing public keys (PEM) for auditors."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --community and --out."""
        parser.add_argument(
            "--community", default=PLATFORM_LOG, help="a community's slug (default: 'public', the platform's log)"
        )
        parser.add_argument("--out", type=Path, help="file to write (default: standard output)")

    def run(self, **options: Any) -> None:
        """Write the keys."""
        slug = options["community"]
        log = PLATFORM_LOG if slug == PLATFORM_LOG else community_get(slug=slug).schema_name
        text = public_keys_pem(log)
        if not text:
            raise CommandError("no audit signing key is published yet")
        out: Path | None = options["out"]
        if out is None:
            self.stdout.write(text, ending="")
            return
        out.write_text(text, encoding="ascii")
        self.stdout.write(f"wrote {text.count('BEGIN PUBLIC KEY')} public keys of {slug} to {out}")
