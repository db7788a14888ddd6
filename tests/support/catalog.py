"""What a schema holds, from PostgreSQL's catalog, with its own name replaced: two schemas compare equal when alike.

Tables, views and sequences (kind, owner, grants), columns (type, nullability,
default, identity), indexes, constraints, triggers, functions (definition,
settings, security, owner, grants) and the schema's own grants: everything a
migration makes, so that a schema made another way can be proved the same.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

QUERIES = {
    "schema": "SELECT n.nspowner::regrole::text, n.nspacl::text FROM pg_namespace n WHERE n.nspname = %(s)s",
    "relations": """
        SELECT c.relname, c.relkind, c.relpersistence, c.relowner::regrole::text, c.relacl::text, c.reloptions::text
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %(s)s AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')""",
    "columns": """
        SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, a.attcollation::regcollation::text
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE n.nspname = %(s)s AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm')""",
    "indexes": """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
          FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %(s)s""",
    "constraints": """
        SELECT c.conrelid::regclass::text, c.conname, c.contype, pg_get_constraintdef(c.oid), c.condeferrable,
               c.condeferred, c.convalidated
          FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = %(s)s""",
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %(s)s AND NOT t.tgisinternal""",
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid), p.prosecdef,
               p.proconfig::text, p.proowner::regrole::text, p.proacl::text
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(s)s""",
    "sequences": """
        SELECT c.relname, s.seqtypid::regtype::text, s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache,
               s.seqcycle
          FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %(s)s""",
    "migrations": "SELECT app, name FROM {schema}.django_migrations",
}


def schema_catalog(schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every kind of object in ``schema``, sorted, with ``schema`` written as ``<schema>`` wherever it appears."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with connection.cursor() as cursor:
        for kind, query in QUERIES.items():
            cursor.execute(query.replace("{schema}", connection.ops.quote_name(schema)), {"s": schema})
            rows = [tuple(_anonymous(value, schema) for value in row) for row in cursor.fetchall()]
            found[kind] = sorted(rows, key=repr)
    return found


def _anonymous(value: Any, schema: str) -> Any:
    return value.replace(schema, "<schema>") if isinstance(value, str) else value
