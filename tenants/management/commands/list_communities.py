"""``list_communities``: one line per community."""

from __future__ import annotations

from typing import Any

from core.commands import ApplicationCommand
from tenants.selectors import community_list


class Command(ApplicationCommand):
    """List communities with their status and domains."""

    help = "List communities: slug, status, domains, name."

    def run(self, **options: Any) -> None:
        """Print a table of communities."""
        communities = list(community_list())
        if not communities:
            self.stdout.write("no communities")
            return
        self.stdout.write(f"{'SLUG':<20} {'STATUS':<11} {'DOMAINS':<40} NAME")
        for community in communities:
            domains = ",".join(domain.domain for domain in community.domains.all())
            self.stdout.write(f"{community.slug:<20} {community.status:<11} {domains:<40} {community.name}")
