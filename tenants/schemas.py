"""A new community's schema: the statements of its migrations, recorded once per process and replayed.

Running every tenant migration through Django's ``migrate`` costs about a
second per community (the migration graph, the project state rebuilt and
rendered for each migration, introspection), which makes a thousand
communities a quarter of an hour. What those migrations send to PostgreSQL for
an empty schema is always the same, so the first creation in a process
records it: a throwaway schema with a random name is migrated by
django-tenants' own path (``migrate_schemas``, its ``schema_migrated`` grants
included) inside a transaction that is rolled back, every statement sent
captured (Django's ``execute_wrapper``). Each creation then creates the schema
and replays those statements in it, with the throwaway name replaced by the
community's, in the caller's transaction. Savepoints and the search path
are left out: the replay runs in the caller's transaction, with the search path
django-tenants sets for the new schema.

The result is the schema Django's ``migrate`` makes (tests/tenants/test_schemas.py
compares tables, columns, indexes, constraints, triggers, functions, sequences,
owners and grants), at a few tens of milliseconds; the migrations themselves
still decide everything. The throwaway name is random hex that no slug, table,
column or value could contain, so replacing it is exact.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.models import TenantMixin
from django_tenants.signals import post_schema_sync

from core.schema import tenant_connection, use_public_schema
from tenants.roles import quoted

# The transaction's own statements, and the search path the backend sets (tenants/backend: set per transaction).
_LEFT_OUT = (
    "SAVEPOINT ",
    "RELEASE SAVEPOINT ",
    "ROLLBACK TO SAVEPOINT ",
    "SET SEARCH_PATH",
    "SELECT SET_CONFIG('SEARCH_PATH'",
)
TEMPLATE_PREFIX = "cgrecord_"


@dataclass(frozen=True)
class Statement:
    """One statement the migrations sent: its SQL, its parameters, and whether it was an ``executemany``."""

    sql: str
    params: Any
    many: bool


@dataclass(frozen=True)
class Recording:
    """The statements that migrate an empty schema named ``template``."""

    template: str
    statements: tuple[Statement, ...]

    def for_schema(self, schema: str) -> list[Statement]:
        """The statements with ``template`` replaced by ``schema`` in the SQL and in every parameter.

        A time among the parameters (when ``django_migrations`` records a
        migration applied) becomes now.
        """
        now = timezone.now()
        return [
            Statement(statement.sql.replace(self.template, schema),
                      _replaced(statement.params, self.template, schema, now), statement.many)
            for statement in self.statements
        ]  # fmt: skip


def _replaced(value: Any, old: str, new: str, now: datetime) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, datetime):
        return now
    if isinstance(value, list | tuple):
        return type(value)(_replaced(item, old, new, now) for item in value)
    if isinstance(value, dict):
        return {key: _replaced(item, old, new, now) for key, item in value.items()}
    return value


_lock = threading.Lock()
_recording: Recording | None = None


def record_migrations() -> Recording:
    """Migrate a throwaway schema in a transaction rolled back, keeping every statement it took."""
    template = TEMPLATE_PREFIX + secrets.token_hex(12)
    statements: list[Statement] = []

    def keep(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        if not sql.lstrip().upper().startswith(_LEFT_OUT):
            statements.append(Statement(sql, params, many))
        return execute(sql, params, many, context)

    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE SCHEMA {quoted(template)}")
            with connection.execute_wrapper(keep):
                call_command("migrate_schemas", tenant=True, schema_name=template, interactive=False, verbosity=0)
            transaction.set_rollback(True)
    finally:
        use_public_schema()
    return Recording(template, tuple(statements))


def recording() -> Recording:
    """This process's recording, made on first use."""
    global _recording  # noqa: PLW0603  # one per process, made once
    with _lock:
        if _recording is None:
            _recording = record_migrations()
        return _recording


def forget_recording() -> None:
    """Record again at the next creation (after migrations changed under a running process, as tests do)."""
    global _recording  # noqa: PLW0603
    with _lock:
        _recording = None


def community_schema_create(community: TenantMixin) -> None:
    """Create ``community``'s schema, migrated and granted, in the caller's transaction.

    Sends ``post_schema_sync`` as django-tenants does after it creates a schema.
    """
    schema = community.schema_name
    statements = recording().for_schema(schema)
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE SCHEMA {quoted(schema)}")
            tenant_connection().set_schema(schema)
            with connection.cursor() as cursor:
                for statement in statements:
                    if statement.many:
                        cursor.executemany(statement.sql, statement.params)
                    else:
                        cursor.execute(statement.sql, statement.params)
    finally:
        use_public_schema()
    post_schema_sync.send(sender=TenantMixin, tenant=community.serializable_fields())
