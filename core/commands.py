"""Base class for management commands: an :class:`ApplicationError` becomes a one-line error."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError


class ApplicationCommand(BaseCommand):
    """A command whose ``run`` may raise :class:`ApplicationError`; the operator sees its detail only."""

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the command, turning application errors into ``CommandError`` (exit status 1)."""
        try:
            self.run(**options)
        except ApplicationError as error:
            raise CommandError(f"{error.detail} ({error.code})") from None

    def run(self, **options: Any) -> None:
        """Do the command's work."""
        raise NotImplementedError
