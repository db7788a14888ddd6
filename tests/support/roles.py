"""The service's database role in tests: created once, and acted as where a test attacks what it may do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.conf import settings
from django.db import connection
from psycopg import sql


def ensure_service_role() -> None:
    """Create the service's role (LOGIN, no privileges yet: migrations grant them) unless it exists."""
    role = settings.DATABASE_SERVICE_ROLE
    params = connection.get_connection_params()
    params["dbname"] = "postgres"
    with psycopg.connect(**params, autocommit=True) as maintenance:
        if maintenance.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is None:
            maintenance.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))


@contextmanager
def as_service_role() -> Iterator[None]:
    """Within the test's transaction, act as the service's database role (``SET LOCAL ROLE``), then back."""
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(settings.DATABASE_SERVICE_ROLE)).as_string())
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
