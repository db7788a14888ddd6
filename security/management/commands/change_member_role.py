"""``change_member_role --email E --community S --from R1 --to R2``: event ``membership.role_change``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from core.commands import OperatorCommand
from security.actions import membership_role_change
from security.roles import Role


class Command(OperatorCommand):
    """Turn one of a user's roles in a community into another."""

    help = "Change one of a user's roles in a community into another."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --email, --community, --from and --to."""
        parser.add_argument("--email", required=True)
        parser.add_argument("--community", required=True, help="community slug")
        parser.add_argument("--from", dest="from_role", required=True, choices=Role.values)
        parser.add_argument("--to", dest="to_role", required=True, choices=Role.values)

    def run(self, **options: Any) -> None:
        """Change the role."""
        membership = membership_role_change(
            email=options["email"],
            community_slug=options["community"],
            from_role=options["from_role"],
            to_role=options["to_role"],
            actor_id=self.actor_id,
        )
        self.stdout.write(f"{options['email'].lower()} is {membership.role} in {options['community']}")
