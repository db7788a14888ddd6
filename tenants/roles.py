"""What the service's database role may do in each schema, granted after that schema's migrations.

Migrations run as the tables' owner; the API and the workers run as the
service's role (``DATABASE_SERVICE_ROLE``). After each schema is migrated
(django-tenants' ``schema_migrated``), the owner grants that role:

* usage of the schema; SELECT, INSERT, UPDATE and DELETE on its tables;
  USAGE and SELECT on its sequences; EXECUTE on its functions;
* on every table the audit log's append-only triggers guard
  (``audit_refuse_change``, ``audit_refuse_statement_change``), SELECT and
  INSERT only: their DELETEs happen
  inside the owner's ``SECURITY DEFINER`` functions, which check their own
  preconditions (security audit migration 0006).

The rule reads the catalog, so a table that gains the append-only trigger
later loses UPDATE and DELETE at the next migration without a list to keep.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection

APPEND_ONLY_GUARDS = ["audit_refuse_change", "audit_refuse_statement_change"]
_APPEND_ONLY = """
SELECT DISTINCT c.relname FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE n.nspname = %s AND p.proname = ANY(%s)
 ORDER BY 1
"""


def quoted(name: str) -> str:
    """``name`` as a quoted SQL identifier (names come from the catalog and settings, never from a request)."""
    return '"' + name.replace('"', '""') + '"'


def grant_statements(schema: str, role: str, *, append_only: list[str]) -> list[str]:
    """The statements that give ``role`` the service's privileges in ``schema``."""
    where, to = quoted(schema), quoted(role)
    statements = [
        f"GRANT USAGE ON SCHEMA {where} TO {to}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {where} TO {to}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {where} TO {to}",
        f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {where} TO {to}",
    ]
    statements += [f"REVOKE UPDATE, DELETE, TRUNCATE ON {where}.{quoted(table)} FROM {to}" for table in append_only]
    return statements


def grant_service_privileges(schema_name: str, **_: Any) -> None:
    """After ``schema_name``'s migrations: grant the service's role what it may do there (nothing for one role)."""
    role = settings.DATABASE_SERVICE_ROLE
    if not role:
        return
    with connection.cursor() as cursor:
        cursor.execute(_APPEND_ONLY, [schema_name, APPEND_ONLY_GUARDS])
        append_only = [str(row[0]) for row in cursor.fetchall()]
        for statement in grant_statements(schema_name, role, append_only=append_only):
            cursor.execute(statement)
