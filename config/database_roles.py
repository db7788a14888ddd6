"""Which database role a process connects as: the tables' owner, or the service.

The tables' *owner* runs migrations and the commands that create or drop a
community's schema; the *service* (the API and the workers) runs as a role
that may read and write the research tables but only append to the audit log
(security review, finding 3; what the service's role is granted is in
:mod:`tenants.roles`). Settings read these helpers before Django is set up.
"""

from __future__ import annotations

from urllib.parse import urlsplit

ROLES = ("service", "owner")
# manage.py connects these commands as the owner: they create, migrate or drop schemas (the restore test
# makes and drops a canary community; a backup needs the owner's REPLICATION unless BACKUP_DATABASE_URL is set).
OWNER_COMMANDS = frozenset(
    {"migrate", "migrate_schemas", "create_community", "purge_offboarded_communities", "seed_demo", "backup",
     "restore_test", "restore_community"}
)  # fmt: skip


def connection_url(role: str, service_url: str, owner_url: str) -> str:
    """The URL this process connects with: the owner's for ``owner`` (when one is set), else the service's.

    Raises:
        ValueError: ``role`` is neither ``service`` nor ``owner``.
    """
    if role not in ROLES:
        raise ValueError(f"DATABASE_ROLE must be one of {', '.join(ROLES)}, not {role!r}")
    return owner_url if role == "owner" and owner_url else service_url


def user_of(url: str) -> str:
    """The user name in a database URL ("" when it names none)."""
    return urlsplit(url).username or ""


def service_role_of(service_url: str, owner_url: str) -> str:
    """The service's role when there are two (an owner URL of another user); "" when one role does both."""
    service, owner = user_of(service_url), user_of(owner_url)
    return service if owner and service and service != owner else ""
