"""Base classes for management commands: one-line errors, and who ran a command that changes something.

A command that changes something (a role, a user, a key, a community) is an
:class:`OperatorCommand`: it takes ``--operator NAME`` (by default the OS user
running it, :func:`getpass.getuser`) and hands the action ``self.actor_id``,
``operator:<name>``, which the action writes into its audit event. The one
place that turns a name into an actor id is :func:`operator_actor`.
"""

from __future__ import annotations

import getpass
import os
import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ApplicationError

OPERATOR_PREFIX = "operator:"
# An actor id is at most 64 characters; the name is what is left after the prefix.
_OPERATOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,54}")


def default_operator() -> str:
    """The OS user running the command (``uid<N>`` when the account has no name, as in some containers)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER: name the uid instead
        return f"uid{os.getuid()}"


def operator_actor(name: str) -> str:
    """The audit actor id of an operator named ``name``: ``operator:<name>``.

    Raises:
        ValueError: an empty name, or one with characters other than letters, digits and ``._@+-``.
    """
    name = name.strip()
    if not _OPERATOR_NAME.fullmatch(name):
        raise ValueError("the operator's name is 1 to 55 letters, digits or ._@+- (starting with a letter or digit)")
    return OPERATOR_PREFIX + name


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


class OperatorCommand(ApplicationCommand):
    """A command that changes something: ``--operator NAME`` says who ran it, for the audit event.

    ``run`` reads ``self.actor_id`` (``operator:<name>``) and passes it to the action.
    """

    actor_id: str = ""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        """Every subclass's arguments, and ``--operator``."""
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument(
            "--operator",
            default=None,
            help="who runs this, recorded in the audit event as operator:<name> (default: the OS user)",
        )
        return parser

    def handle(self, *args: Any, **options: Any) -> None:
        """Resolve the operator, then run."""
        try:
            name = options.get("operator")
            self.actor_id = operator_actor(default_operator() if name is None else name)
        except ValueError as error:
            raise CommandError(f"--operator: {error}") from None
        super().handle(*args, **options)
