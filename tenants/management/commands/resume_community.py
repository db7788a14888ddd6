"""``resume_community --slug S``: serve a suspended community again."""

from tenants.lifecycle import community_resume
from tenants.management.commands._status import StatusCommand


class Command(StatusCommand):
    """Resume a suspended community."""

    help = "Resume a suspended community."
    action = staticmethod(community_resume)
