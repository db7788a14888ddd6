"""``set_user_profile --email E [--name N] [--organisation O] [--address A]``: how an accounting names a user."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.commands import OperatorCommand
from security.affiliations import user_profile_set


class Command(OperatorCommand):
    """Change a user's name, organisation or postal address; event ``user.profile`` in the platform log."""

    help = "Set the name, organisation and postal address an accounting of disclosures names a user by."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --email and the fields."""
        parser.add_argument("--email", required=True)
        parser.add_argument("--name")
        parser.add_argument("--organisation")
        parser.add_argument("--address")

    def run(self, **options: Any) -> None:
        """Change the fields given."""
        if all(options[name] is None for name in ("name", "organisation", "address")):
            raise CommandError("give at least one of --name, --organisation, --address")
        user = user_profile_set(
            email=options["email"],
            actor_id=self.actor_id,
            full_name=options["name"],
            organisation=options["organisation"],
            postal_address=options["address"],
        )
        self.stdout.write(f"updated {user.email}")
