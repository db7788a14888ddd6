"""``audit_keys --out FILE``: the public keys that verify audit checkpoints and manifests, as PEM.

Give this file to auditors through a channel apart from any export (or let
them fetch ``GET /api/v1/audit/keys/``), so that a forged export cannot bring
its own key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.commands import ApplicationCommand
from security.audit.checkpoints import public_keys_pem


class Command(ApplicationCommand):
    """Write every published audit public key (all versions) as PEM."""

    help = "Write the audit signing public keys (PEM) for auditors."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --out."""
        parser.add_argument("--out", type=Path, help="file to write (default: standard output)")

    def run(self, **options: Any) -> None:
        """Write the keys."""
        text = public_keys_pem()
        if not text:
            raise CommandError("no audit signing key is published yet")
        out: Path | None = options["out"]
        if out is None:
            self.stdout.write(text, ending="")
            return
        out.write_text(text, encoding="ascii")
        self.stdout.write(f"wrote {text.count('BEGIN PUBLIC KEY')} public keys to {out}")
