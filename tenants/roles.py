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


_MISSING_GRANTS = """
SELECT n.nspname FROM pg_namespace n
 WHERE n.nspname = ANY(%(schemas)s) AND NOT has_schema_privilege(%(role)s, n.oid, 'USAGE')
UNION
SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND (NOT has_table_privilege(%(role)s, c.oid, 'SELECT') OR NOT has_table_privilege(%(role)s, c.oid, 'INSERT')
        OR CASE WHEN c.oid IN (SELECT tgrelid FROM guarded)
                THEN has_table_privilege(%(role)s, c.oid, 'UPDATE') OR has_table_privilege(%(role)s, c.oid, 'DELETE')
                     OR has_table_privilege(%(role)s, c.oid, 'TRUNCATE')
                ELSE NOT (has_table_privilege(%(role)s, c.oid, 'UPDATE')
                          AND has_table_privilege(%(role)s, c.oid, 'DELETE')) END)
UNION
SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = ANY(%(schemas)s) AND c.relkind = 'S'
   AND NOT (has_sequence_privilege(%(role)s, c.oid, 'USAGE') AND has_sequence_privilege(%(role)s, c.oid, 'SELECT'))
UNION
SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = ANY(%(schemas)s) AND NOT has_function_privilege(%(role)s, p.oid, 'EXECUTE')
"""
_GUARDED = """
WITH guarded AS (
  SELECT t.tgrelid FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid WHERE p.proname = ANY(%(guards)s)
)
"""


def schemas_needing_grants(schemas: list[str]) -> list[str]:
    """Those of ``schemas`` where the service's role lacks a privilege it is granted (or holds one it is not).

    What :func:`grant_service_privileges` gives, checked for every schema in one
    catalog query: a migration run that skips a schema already at the latest
    state still grants there when something is missing (a schema migrated
    before the roles were split, a table created by hand).
    """
    role = settings.DATABASE_SERVICE_ROLE
    if not role or not schemas:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_GUARDED + _MISSING_GRANTS, {"schemas": schemas, "role": role, "guards": APPEND_ONLY_GUARDS})
        return sorted(str(row[0]) for row in cursor.fetchall())
