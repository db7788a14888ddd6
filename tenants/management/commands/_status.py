"""Shared shape of the commands that change a community's status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django.core.management.base import CommandParser

from core.commands import OperatorCommand
from tenants.models import Community


class StatusCommand(OperatorCommand):
    """``<command> --slug S``: apply ``action`` and report the resulting status."""

    action: ClassVar[Callable[..., Community]]

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --slug."""
        parser.add_argument("--slug", required=True)

    def run(self, **options: Any) -> None:
        """Apply the action and confirm the new status."""
        community = type(self).action(slug=options["slug"], actor_id=self.actor_id)
        self.stdout.write(f"community {community.slug} is {community.status}")
