"""The connection's schema switching (django-tenants' database backend), typed; and what a schema may be named.

A community's slug becomes its PostgreSQL schema name, so the pattern lives
here, where the key provider (key names) and the communities app (validation
and a CHECK constraint) both read it.
"""

from __future__ import annotations

from typing import cast

from django.db import connection
from django_tenants.models import TenantMixin
from django_tenants.postgresql_backend.base import DatabaseWrapper

SLUG_PATTERN = r"^[a-z][a-z0-9_]{2,39}$"


def tenant_connection() -> DatabaseWrapper:
    """The default connection, which settings make a django-tenants connection."""
    return cast("DatabaseWrapper", connection)


def use_public_schema() -> None:
    """Point the connection at the public schema (communities, users, memberships)."""
    tenant_connection().set_schema_to_public()


def use_community_schema(community: TenantMixin) -> None:
    """Point the connection at ``community``'s schema (with public behind it)."""
    tenant_connection().set_tenant(community)
