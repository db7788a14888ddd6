"""``add_member --email E --community S --role R [--operator NAME]``: event ``membership.grant``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from core.commands import OperatorCommand
from security.actions import membership_add
from security.roles import Role


class Command(OperatorCommand):
    """Grant a user a role in a community."""

    help = "Give a user a role in a community."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --email, --community and --role."""
        parser.add_argument("--email", required=True)
        parser.add_argument("--community", required=True, help="community slug")
        parser.add_argument("--role", required=True, choices=Role.values)

    def run(self, **options: Any) -> None:
        """Add the membership."""
        membership = membership_add(
            email=options["email"], community_slug=options["community"], role=options["role"], actor_id=self.actor_id
        )
        self.stdout.write(f"{options['email'].lower()} is {membership.role} in {options['community']}")
