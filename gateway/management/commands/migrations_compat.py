"""``migrations_compat [--write-baseline]``: new migrations must be backward-compatible across one release."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.commands import ApplicationCommand
from gateway import migrations_compat


class Command(ApplicationCommand):
    """Lint the migrations outside the baseline (exit 1 when one would break the live release)."""

    help = "Refuse migrations that break the release still live (drop/rename column, NOT NULL without default...)."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --write-baseline."""
        parser.add_argument("--write-baseline", action="store_true", help="accept every current migration (once)")

    def run(self, **options: Any) -> None:
        """Lint, or write the baseline."""
        if options["write_baseline"]:
            self.stdout.write(f"baseline: {migrations_compat.write_baseline()} migrations accepted")
            return
        erroneous, linted = migrations_compat.lint()
        if erroneous:
            raise CommandError(
                f"{erroneous} of {linted} new migrations are not backward-compatible: split them into an expand "
                "release and a contract release (docs/operations/blue-green.md)"
            )
        self.stdout.write(f"{linted} new migrations, all backward-compatible")
