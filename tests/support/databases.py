"""Databases of a test module's own on ``DATABASE_URL``'s server, for servers the module starts as processes.

Such processes cannot see the test database's uncommitted transaction, so they serve a database made afresh
for the module (``DATABASE_URL``'s name, a suffix of the module's and the xdist worker's, so parallel workers
never share one), dropped again at its end.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import psycopg
from django.conf import settings
from psycopg import sql


def scoped_name(base: str, suffix: str) -> str:
    """``base`` with ``suffix`` and the xdist worker's id (``<base><suffix>_gw1``)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"{base}{suffix}{'_' + worker if worker else ''}"


def fresh_database(suffix: str) -> str:
    """Drop and create the database ``DATABASE_URL``'s name with ``suffix`` names; its URL (same server, user)."""
    parts = urlsplit(settings.DATABASE_URL)
    name = scoped_name(parts.path.lstrip("/"), suffix)
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return parts._replace(path="/" + name).geturl()


def drop_database(url: str) -> None:
    """Drop the database ``url`` names (connections still open are ended)."""
    parts = urlsplit(url)
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(parts.path[1:])))
