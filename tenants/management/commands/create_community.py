"""``create_community --slug alpha --name "Alpha Cohort" --domain alpha.localhost``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from core.commands import OperatorCommand
from tenants.lifecycle import community_create


class Command(OperatorCommand):
    """Create a community, migrate its schema and bind its domain."""

    help = "Create a community with its own schema and primary domain."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --slug, --name and --domain."""
        parser.add_argument("--slug", required=True, help="schema name: ^[a-z][a-z0-9_]{2,39}$")
        parser.add_argument("--name", required=True, help="display name")
        parser.add_argument("--domain", required=True, help="host name, e.g. alpha.localhost")

    def run(self, **options: Any) -> None:
        """Create the community and say what was created."""
        community = community_create(
            slug=options["slug"], name=options["name"], domain=options["domain"], actor_id=self.actor_id
        )
        self.stdout.write(f"created community {community.slug} ({community.name}) at {options['domain'].lower()}")
