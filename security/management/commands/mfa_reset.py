"""``mfa_reset --email E [--operator NAME]``: remove a lost second factor; event ``user.mfa_reset``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from core.commands import OperatorCommand
from security.actions import mfa_reset


class Command(OperatorCommand):
    """Remove a user's TOTP device and recovery codes, so they can enroll again."""

    help = "Remove a user's second factor and recovery codes (after checking who they are out of band)."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --email."""
        parser.add_argument("--email", required=True)

    def run(self, **options: Any) -> None:
        """Reset."""
        user = mfa_reset(email=options["email"], actor_id=self.actor_id)
        self.stdout.write(f"second factor removed for {user.email}; they can enroll again")
