"""What the sharding tests check statements against: where each relation lives, and a statement's plan.

Under Citus schema-based sharding (docs/operations/sharding.md) each community's
schema is a distributed schema, placed whole on one node, and the public schema
stays on the coordinator except for the tables named in ``REFERENCE_TABLES``,
which are copied to every node. A statement is routed to one node only when it
touches one community's schema and, besides it, reference tables alone; the
tests hold the workload's statements to that, with the relations each touches
read from PostgreSQL's own plan (``EXPLAIN (VERBOSE, FORMAT JSON)``), not from
the SQL text, so an unqualified name counts for the schema it resolved to.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from django.db import connection
from psycopg import sql

from core.schema import tenant_connection

ROOT = Path(__file__).resolve().parents[2]
SHARDING_DOC = ROOT / "docs" / "operations" / "sharding.md"
PUBLIC = "public"
# Catalog schemas: every node has its own; a plan's function scans name them (unnest, jsonb_array_elements...).
CATALOGS = frozenset({"pg_catalog", "information_schema"})
# The public tables that a statement run in a community joins with the community's tables; empty today (the
# workload joins none). A table put here must also be made a reference table in the doc's operator SQL.
REFERENCE_TABLES: frozenset[str] = frozenset()
# The first words of statements that touch no relation: there is nothing to plan.
_UNPLANNED = re.compile(r"^\s*(SAVEPOINT|RELEASE|ROLLBACK|COMMIT|BEGIN|SET|RESET|SHOW|COPY)\b", re.IGNORECASE)
_REFERENCE_CALL = re.compile(r"create_reference_table\('public\.([a-z0-9_]+)'\)")


@dataclass(frozen=True)
class Statement:
    """One statement the workload ran, and the schema its connection was set to."""

    schema: str
    sql: str
    params: Any


@dataclass
class Capture:
    """The statements run through Django's connection while capturing (``connection.execute_wrapper``)."""

    statements: list[Statement] = field(default_factory=list)

    def __call__(self, execute: Any, sql_text: str, params: Any, many: bool, context: Any) -> Any:
        """Record the statement with the schema it runs in, then run it."""
        first = params[0] if many and params else params
        self.statements.append(Statement(schema=tenant_connection().schema_name, sql=sql_text, params=first))
        return execute(sql_text, params, many, context)

    def in_schema(self, schema: str) -> list[Statement]:
        """The statements run while the connection was set to ``schema``."""
        return [statement for statement in self.statements if statement.schema == schema]


def plannable(statement: Statement) -> bool:
    """Whether the statement reads or writes relations (anything but transaction control and settings)."""
    return not _UNPLANNED.match(statement.sql)


def relations(plan: Any) -> Iterator[tuple[str, str]]:
    """Each ``(schema, relation)`` a plan (or a part of it) scans or modifies."""
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            yield str(plan["Schema"]), str(plan["Relation Name"])
        for value in plan.values():
            yield from relations(value)
    elif isinstance(plan, list):
        for item in plan:
            yield from relations(item)


def touched(statement: Statement, communities: Sequence[str]) -> set[tuple[str, str]]:
    """The relations ``statement`` touches, as PostgreSQL resolves them in the schema it ran in.

    The search path is set as django-tenants sets it (the community's schema, then public) and the
    statement is planned, never executed.
    """
    path = [statement.schema] if statement.schema == PUBLIC else [statement.schema, PUBLIC]
    with connection.cursor() as cursor:
        raw = cursor.cursor
        raw.execute(sql.SQL("SET LOCAL search_path = {}").format(sql.SQL(", ").join(map(sql.Identifier, path))))
        raw.execute(f"EXPLAIN (VERBOSE, FORMAT JSON) {statement.sql}", statement.params)
        row = raw.fetchone()
    assert row is not None
    plan = row[0] if not isinstance(row[0], str | bytes) else orjson.loads(row[0])
    found = set(relations(plan))
    unknown = {schema for schema, _ in found} - {PUBLIC, *communities, *CATALOGS}
    assert not unknown, f"a schema the test does not know: {unknown} in {statement.sql}"
    return found


def violations(statement: Statement, found: set[tuple[str, str]], communities: Sequence[str]) -> list[str]:
    """What in ``statement`` would stop it being served by one node (empty when nothing does)."""
    schemas = {schema for schema, _ in found if schema in communities}
    problems = []
    if len(schemas) > 1:
        problems.append(f"joins the schemas of {sorted(schemas)}")
    if statement.schema in communities and schemas - {statement.schema}:
        problems.append(f"run in {statement.schema}, reaches {sorted(schemas - {statement.schema})}")
    local = {name for schema, name in found if schema == PUBLIC} - REFERENCE_TABLES
    if schemas and local:
        problems.append(f"joins community tables with public tables that are not reference tables: {sorted(local)}")
    return problems


def documented_reference_tables() -> set[str]:
    """The public tables the operator's SQL in docs/operations/sharding.md makes reference tables."""
    return set(_REFERENCE_CALL.findall(SHARDING_DOC.read_text(encoding="utf-8")))
