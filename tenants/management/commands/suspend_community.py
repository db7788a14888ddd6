"""``suspend_community --slug S``: every API request to it is refused (403 community_suspended)."""

from tenants.lifecycle import community_suspend
from tenants.management.commands._status import StatusCommand


class Command(StatusCommand):
    """Suspend an active community."""

    help = "Suspend a community: its API refuses every request until resumed."
    action = staticmethod(community_suspend)
