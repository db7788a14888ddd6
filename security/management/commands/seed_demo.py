"""``seed_demo``: demo communities alpha and beta with one user per role (development only).

Each demo user has a name and an organisation, and an affiliation in its
community (the researcher is from a partner organisation, ``external``; the
others are the community's own workforce), so the accounting of disclosures
has something to tell apart. Idempotent: what exists is kept. The demo password is generated once per
machine and kept outside the repository (mode 0600).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django_tenants.utils import schema_context

from core.commands import OperatorCommand
from security.actions import membership_add, user_create
from security.affiliations import affiliation_set
from security.local_secrets import read_or_create_secret
from security.models import Affiliation, AffiliationKind, Membership, User
from security.roles import Role
from tenants.lifecycle import community_create
from tenants.models import Community
from vault.keys import community_keys_ensure

DEMO_COMMUNITIES = (("alpha", "Alpha Cohort", "alpha.localhost"), ("beta", "Beta Registry", "beta.localhost"))
# The one demo role from another organisation of the community: its reads are disclosures, the others' uses.
EXTERNAL_ROLE = Role.RESEARCHER


def demo_profile(role: str, name: str) -> dict[str, str]:
    """The demo user's name and organisation, as an accounting of disclosures names them."""
    organisation = "Partner University (demo)" if role == EXTERNAL_ROLE else f"{name} (demo)"
    return {"full_name": f"Demo {role.replace('_', ' ').title()}", "organisation": organisation}


def demo_password(state_dir: Path) -> str:
    """The machine's demo password, generated on first use."""
    return read_or_create_secret(state_dir / "demo-password", nbytes=12)


class Command(OperatorCommand):
    """Create (or keep) the demo communities and users, then print how to call the API."""

    help = "Create demo communities alpha and beta with one user per role; print logins and curl commands."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --base-url."""
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def run(self, **options: Any) -> None:
        """Seed and print."""
        if not settings.DEMO_SEED_ALLOWED:
            raise CommandError("seed_demo is for development settings only")
        password = demo_password(Path(settings.LOCAL_STATE_DIR))
        for slug, name, domain in DEMO_COMMUNITIES:
            community = Community.objects.filter(slug=slug).first() or community_create(
                slug=slug, name=name, domain=domain, actor_id=self.actor_id
            )
            with schema_context(slug):
                community_keys_ensure(slug)
            for role in Role.values:
                email = f"{role}@{slug}.example"
                if not User.objects.filter(email=email).exists():
                    user_create(email=email, password=password, actor_id=self.actor_id, **demo_profile(role, name))
                if not Membership.objects.filter(user__email=email, community=community, role=role).exists():
                    membership_add(email=email, community_slug=slug, role=role, actor_id=self.actor_id)
                if not Affiliation.objects.filter(user__email=email, community=community).exists():
                    kind = AffiliationKind.EXTERNAL if role == EXTERNAL_ROLE else AffiliationKind.WORKFORCE
                    affiliation_set(email=email, community_slug=slug, kind=kind, actor_id=self.actor_id)
        self._print_usage(options["base_url"].rstrip("/"), password)

    def _print_usage(self, base_url: str, password: str) -> None:
        write = self.stdout.write
        write("\nDemo communities: alpha (Host: alpha.localhost), beta (Host: beta.localhost)")
        write(f"Demo logins (password for all: {password}):")
        for slug, _, _ in DEMO_COMMUNITIES:
            write("  " + "  ".join(f"{role}@{slug}.example" for role in Role.values))
        body = f'{{"email": "owner@alpha.example", "password": "{password}"}}'
        write("\nGet a token and call the API:\n")
        write(
            f"  TOKEN=$(curl -s -X POST {base_url}/api/v1/auth/token -H 'Host: alpha.localhost' "
            f"-H 'Content-Type: application/json' -d '{body}' "
            "| python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access\"])')"
        )
        write(f"  curl -s {base_url}/api/v1/me -H 'Host: alpha.localhost' -H \"Authorization: Bearer $TOKEN\"")
        write(f"\nAPI docs: {base_url}/api/docs/   Health: {base_url}/health/ready\n")
