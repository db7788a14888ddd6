"""``set_affiliation --community SLUG --email E --affiliation workforce|external``: from now on, not back in time."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from core.commands import OperatorCommand
from security.affiliations import affiliation_set
from security.models import AffiliationKind


class Command(OperatorCommand):
    """Record a member's affiliation in a community, in force from now on; event ``membership.affiliation``."""

    help = (
        "Record whether a member is the covered entity's own workforce or from another organisation of the "
        "community, from now on (earlier accesses keep the affiliation then in force)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --community, --email and --affiliation."""
        parser.add_argument("--community", required=True)
        parser.add_argument("--email", required=True)
        parser.add_argument("--affiliation", required=True, choices=AffiliationKind.values)

    def run(self, **options: Any) -> None:
        """Record the affiliation."""
        made = affiliation_set(
            email=options["email"],
            community_slug=options["community"],
            kind=options["affiliation"],
            actor_id=self.actor_id,
        )
        self.stdout.write(
            f"{options['email']} is {made.kind} in {options['community']} from {made.valid_from.isoformat()}"
        )
