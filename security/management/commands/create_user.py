"""``create_user --email E --password-stdin``: the password never appears in argv or shell history."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.commands import OperatorCommand
from security.actions import user_create


class Command(OperatorCommand):
    """Create a user; read the password from standard input."""

    help = "Create a user who signs in by email. The password is read from standard input."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --email, --password-stdin and how an accounting names the user."""
        parser.add_argument("--email", required=True)
        parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        parser.add_argument("--name", default="", help="the full name an accounting of disclosures names them by")
        parser.add_argument("--organisation", default="", help="the organisation they act for")
        parser.add_argument("--address", default="", help="a postal address, when known")

    def run(self, **options: Any) -> None:
        """Create the user."""
        if not options["password_stdin"]:
            raise CommandError("pass --password-stdin and send the password on standard input")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("no password on standard input")
        user = user_create(
            email=options["email"],
            password=password,
            actor_id=self.actor_id,
            full_name=options["name"],
            organisation=options["organisation"],
            postal_address=options["address"],
        )
        self.stdout.write(f"created user {user.email} ({user.pk})")
