"""``remove_member --email E --community S --role R [--operator NAME]``: event ``membership.remove``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from core.commands import OperatorCommand
from security.actions import membership_remove
from security.roles import Role


class Command(OperatorCommand):
    """Take a role in a community away from a user."""

    help = "Remove a user's role in a community."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --email, --community and --role."""
        parser.add_argument("--email", required=True)
        parser.add_argument("--community", required=True, help="community slug")
        parser.add_argument("--role", required=True, choices=Role.values)

    def run(self, **options: Any) -> None:
        """Remove the membership."""
        membership_remove(
            email=options["email"], community_slug=options["community"], role=options["role"], actor_id=self.actor_id
        )
        self.stdout.write(f"{options['email'].lower()} is no longer {options['role']} in {options['community']}")
