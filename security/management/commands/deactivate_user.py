"""``deactivate_user --email E [--reactivate] [--operator NAME]``: events ``user.deactivate``, ``user.reactivate``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from core.commands import OperatorCommand
from security.actions import user_deactivate, user_reactivate


class Command(OperatorCommand):
    """Stop a user signing in anywhere, or (``--reactivate``) let them again."""

    help = "Deactivate a user (no sign-in anywhere; memberships kept), or reactivate one with --reactivate."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --email and --reactivate."""
        parser.add_argument("--email", required=True)
        parser.add_argument("--reactivate", action="store_true", help="let a deactivated user sign in again")

    def run(self, **options: Any) -> None:
        """Deactivate or reactivate."""
        change = user_reactivate if options["reactivate"] else user_deactivate
        user = change(email=options["email"], actor_id=self.actor_id)
        self.stdout.write(f"{user.email} is {'active' if user.is_active else 'deactivated'}")
