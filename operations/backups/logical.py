"""Logical backups of one community: its schema (``pg_dump``) and the platform's rows that belong to it.

So one community can be restored or handed over without the others. A
community's logical backup is, sealed in the store under
``community/<slug>/<id>/``:

- ``schema.dump``: ``pg_dump --format=custom --schema=<slug>`` (its tables,
  its audit chain, its wrapped data keys);
- ``public.<table>.csv``: the public rows that name it, found by the foreign
  keys to ``tenants_community`` (its row, domains, memberships, sessions,
  affiliations), and the accounts of the users those rows name;
- ``manifest.json``: the row counts of every one of those tables.

Its PHI opens only while the community's key exists, as with every backup.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django_tenants.utils import schema_context
from psycopg import IsolationLevel, sql

from operations.backups import postgres
from operations.backups.errors import BackupError
from operations.backups.store import BackupStore
from security.audit.sequencer import audit_chain
from tenants.models import Community, CommunityStatus

COMMUNITY_TABLE = "tenants_community"
USER_TABLE = "security_user"


@dataclass(frozen=True)
class LogicalBackup:
    """One community's logical backup: where it is and what it holds."""

    slug: str
    folder: str
    counts: dict[str, int]
    seconds: float


def referencing(connection: Any, table: str) -> list[tuple[str, str]]:
    """``(table, column)`` of every public table with a foreign key to ``public.<table>``."""
    rows = connection.execute(
        "SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
        "WHERE c.contype = 'f' AND c.confrelid = %s::regclass AND c.conrelid::regclass::text NOT LIKE '%%.%%' "
        "ORDER BY 1, 2",
        [f"public.{table}"],
    ).fetchall()
    return [(str(name), str(column)) for name, column in rows]


def _copy_out(connection: Any, query: sql.Composed) -> Iterator[bytes]:
    with (
        connection.cursor() as cursor,
        cursor.copy(sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)").format(query)) as copy,
    ):
        for block in copy:
            yield bytes(block)


def _public_rows(connection: Any, community_id: int) -> dict[str, sql.Composed]:
    """The query of each public table's rows that belong to the community (and its users' accounts)."""
    queries = {COMMUNITY_TABLE: sql.SQL("SELECT * FROM public.{} WHERE id = {}").format(
        sql.Identifier(COMMUNITY_TABLE), sql.Literal(community_id))}  # fmt: skip
    user_columns = {table: column for table, column in referencing(connection, USER_TABLE)}
    users: list[sql.Composed] = []
    for table, column in referencing(connection, COMMUNITY_TABLE):
        where = sql.SQL("{} = {}").format(sql.Identifier(column), sql.Literal(community_id))
        queries[table] = sql.SQL("SELECT * FROM public.{} WHERE {}").format(sql.Identifier(table), where)
        if table in user_columns:
            users.append(sql.SQL("SELECT {} FROM public.{} WHERE {}").format(
                sql.Identifier(user_columns[table]), sql.Identifier(table), where))  # fmt: skip
    if users:
        queries[USER_TABLE] = sql.SQL("SELECT * FROM public.{} WHERE id IN ({})").format(
            sql.Identifier(USER_TABLE), sql.SQL(" UNION ").join(users))  # fmt: skip
    return queries


def backed_up_communities() -> list[str]:
    """The communities whose logical backups are taken every day: every one not offboarded."""
    return list(
        Community.objects.exclude(status=CommunityStatus.OFFBOARDED).order_by("slug").values_list("slug", flat=True)
    )


def community_backup(slug: str, store: BackupStore | None = None) -> LogicalBackup:
    """Back one community up logically into the store (see the module's docstring)."""
    store = store or BackupStore()
    started = time.monotonic()
    community = Community.objects.filter(slug=slug).first()
    if community is None:
        raise BackupError(f"no community {slug!r}")
    with schema_context(community.schema_name):
        audit_chain()  # the dump holds its events as chain entries
    folder = f"community/{slug}/{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    counts: dict[str, int] = {}
    # One snapshot for all of it: pg_dump takes the one this transaction exports, the copies and counts read it.
    with postgres.connect() as connection:
        connection.autocommit = False
        connection.isolation_level = IsolationLevel.REPEATABLE_READ
        with connection.transaction():
            snapshot = str(connection.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
            _dump_schema(store, folder, community.schema_name, snapshot)
            for table, query in _public_rows(connection, community.pk).items():
                store.put(f"{folder}/public.{table}.csv", _copy_out(connection, query))
                count_query = sql.SQL("SELECT count(*) FROM ({}) AS rows").format(query)
                counts[f"public.{table}"] = int(connection.execute(count_query).fetchone()[0])  # type: ignore[index]
            counts.update(postgres.table_counts(connection, community.schema_name))
    store.write_manifest_at(folder, {"slug": slug, "schema": community.schema_name, "table_counts": counts})
    return LogicalBackup(slug, folder, counts, time.monotonic() - started)


def _dump_schema(store: BackupStore, folder: str, schema: str, snapshot: str) -> None:
    command = [
        postgres.tool("pg_dump"), "--dbname", postgres.server_url(), "--format", "custom", "--schema", schema,
        "--no-owner", "--no-privileges", "--no-password", "--snapshot", snapshot,
    ]  # fmt: skip
    with postgres.output_of(command) as dump:
        store.put(f"{folder}/schema.dump", dump)


def restore_community(store: BackupStore, folder: str, *, structure_from: str, into: str) -> None:
    """Restore a community's logical backup into the empty database ``into``.

    The public schema's structure comes from ``structure_from`` (a database of
    the same release); then the community's public rows (its own row and its
    users' first: the others refer to them), then its schema.
    """
    with postgres.connect(into) as empty:
        empty.execute("DROP SCHEMA IF EXISTS public CASCADE")  # the dump makes it, as the source has it
    restore = [postgres.tool("pg_restore"), "--dbname", into, "--no-owner", "--exit-on-error"]
    structure = [
        postgres.tool("pg_dump"), "--dbname", structure_from, "--format", "custom", "--schema-only",
        "--schema", "public", "--no-owner", "--no-privileges", "--no-password",
    ]  # fmt: skip
    with postgres.output_of(structure) as dump:
        postgres.feed(restore, dump)
    tables = sorted(
        (name.split("/")[-1].removeprefix("public.").removesuffix(".csv") for name in store.names(folder)
         if name.endswith(".csv")),
        key=lambda table: (table != COMMUNITY_TABLE, table != USER_TABLE, table),
    )  # fmt: skip
    with postgres.connect(into) as connection:
        for table in tables:
            statement = sql.SQL("COPY public.{} FROM STDIN WITH (FORMAT csv, HEADER)").format(sql.Identifier(table))
            with connection.cursor() as cursor, cursor.copy(statement) as copy:
                for chunk in store.read(f"{folder}/public.{table}.csv"):
                    copy.write(chunk)
    postgres.feed(restore, store.read(f"{folder}/schema.dump"))


def schema_counts(url: str, schema: str) -> dict[str, int]:
    """Row counts of ``schema``'s tables in the database ``url``."""
    with postgres.connect(url) as connection:
        return postgres.table_counts(connection, schema)


def public_counts(url: str) -> dict[str, int]:
    """Row counts of the public tables a community's logical backup fills, in the database ``url``."""
    with postgres.connect(url) as connection:
        tables = [COMMUNITY_TABLE, USER_TABLE, *(table for table, _ in referencing(connection, COMMUNITY_TABLE))]
        return {f"public.{table}": postgres.count_rows(connection, "public", table) for table in dict.fromkeys(tables)}
