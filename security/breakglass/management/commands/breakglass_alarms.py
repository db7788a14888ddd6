"""``breakglass_alarms [--community SLUG]``: print every standing break-glass alarm; exit 1 while there is any.

For cron and monitoring: one line per alarm (community, grant id, alarm code,
when the grant opened and ended), never its reason or scope. It raises,
records and mails nothing (the periodic ``alarm_sweep`` does that), so it is
safe to run as often as a probe likes.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone
from django_tenants.utils import schema_context

from core.commands import ApplicationCommand
from security.audit.hashing import format_time
from security.breakglass.selectors import standing_alarms
from security.breakglass.tasks import SWEPT
from tenants.models import Community
from tenants.selectors import community_get


class Command(ApplicationCommand):
    """Print the standing break-glass alarms of one or every active community."""

    help = "Print standing break-glass alarms (overdue reviews, notices not sent); exit 1 if there is any."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --community."""
        parser.add_argument("--community", help="one community's slug (default: every active community)")

    def run(self, **options: Any) -> None:
        """Print the alarms; raise (exit status 1) when there is any."""
        slug = options["community"]
        communities = [community_get(slug=slug)] if slug else list(Community.objects.filter(status__in=SWEPT))
        now = timezone.now()
        count = 0
        for community in communities:
            with schema_context(community.schema_name):
                for grant, codes in standing_alarms(community=community, now=now):
                    for code in codes:
                        count += 1
                        self.stdout.write(
                            f"community={community.slug} grant={grant.id} alarm={code} "
                            f"opened={format_time(grant.created_at)} ended={format_time(grant.ends_at)}"
                        )
        if count:
            raise CommandError(f"{count} break-glass alarm(s)", returncode=1)
        self.stdout.write("no break-glass alarm")
