"""Typed access to the connection's schema switching (django-tenants' database backend)."""

from __future__ import annotations

from typing import cast

from django.db import connection
from django_tenants.postgresql_backend.base import DatabaseWrapper

from tenants.models import Community


def tenant_connection() -> DatabaseWrapper:
    """The default connection, which settings make a django-tenants connection."""
    return cast("DatabaseWrapper", connection)


def use_public_schema() -> None:
    """Point the connection at the public schema (communities, users, memberships)."""
    tenant_connection().set_schema_to_public()


def use_community_schema(community: Community) -> None:
    """Point the connection at ``community``'s schema (with public behind it)."""
    tenant_connection().set_tenant(community)
