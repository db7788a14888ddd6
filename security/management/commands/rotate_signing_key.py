"""``rotate_signing_key [--if-missing] [--prune]``: add a new access-token signing key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from core.commands import OperatorCommand
from security.actions import signing_key_rotate, signing_keys_prune
from security.identity.signing_keys import load_keyring


class Command(OperatorCommand):
    """Rotate the JWT signing key; tokens signed by the previous key keep working until they expire."""

    help = "Create a new signing key (it signs from now on). Previous keys verify until their tokens expire."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --if-missing and --prune."""
        parser.add_argument("--if-missing", action="store_true", help="only create a key when there is none")
        parser.add_argument("--prune", action="store_true", help="also delete keys that can verify nothing any more")

    def run(self, **options: Any) -> None:
        """Create (and optionally prune) keys in JWT_SIGNING_KEYS_DIR."""
        directory = Path(settings.JWT_SIGNING_KEYS_DIR)
        if options["if_missing"] and load_keyring(directory).keys:
            self.stdout.write(f"signing key present in {directory}")
        else:
            key = signing_key_rotate(directory=directory, actor_id=self.actor_id)
            self.stdout.write(f"new signing key {key.kid} in {directory}")
        if options["prune"]:
            for kid in signing_keys_prune(directory=directory, actor_id=self.actor_id):
                self.stdout.write(f"removed retired key {kid}")
