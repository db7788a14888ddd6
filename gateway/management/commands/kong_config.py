"""``kong_config [--out FILE] [--with-keys] [--check]``: Kong's declarative configuration from the URLconf."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from core.commands import ApplicationCommand
from gateway.kong import kong_config, render
from security.identity.signing_keys import current_keyring

DEFAULT_OUT = Path(settings.BASE_DIR) / "deploy" / "kong" / "kong.yml"


class Command(ApplicationCommand):
    """Write (or check) deploy/kong/kong.yml; ``--with-keys`` adds the token consumer's public keys."""

    help = "Generate Kong's DB-less configuration (decK format 3.0) from the URLconf."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --out, --with-keys and --check."""
        parser.add_argument("--out", default=str(DEFAULT_OUT))
        parser.add_argument(
            "--with-keys", action="store_true", help="include the current JWT public keys (deploy time)"
        )
        parser.add_argument("--check", action="store_true", help="fail if the file differs from what would be written")

    def run(self, **options: Any) -> None:
        """Generate, then write or compare."""
        keys = None
        if options["with_keys"]:
            keys = [
                (
                    key.kid,
                    key.public_key.public_bytes(
                        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                    ).decode(),
                )
                for key in current_keyring().verification_keys(time.time())
            ]
            if not keys:
                raise CommandError("no signing keys: run `python manage.py rotate_signing_key` first")
        text = render(kong_config(signing_keys=keys))
        out = Path(options["out"])
        if options["check"]:
            if not out.exists() or out.read_text(encoding="utf-8") != text:
                raise CommandError(f"{out} is not what kong_config generates: run `python manage.py kong_config`")
            self.stdout.write(f"{out} is up to date")
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        self.stdout.write(f"wrote {out}")
