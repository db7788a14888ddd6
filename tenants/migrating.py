"""``manage.py migrate`` for many communities: skip the ones already at the latest state, migrate the rest in parallel.

django-tenants' own executors run Django's ``migrate`` in every schema, one
after another, even when nothing is pending: the migration graph is loaded and
the schema opened a thousand times for a thousand communities. This executor
(``GET_EXECUTOR_FUNCTION`` in the settings points django-tenants' ``migrate``
at :func:`get_executor`) keeps the public schema first, as django-tenants does,
then decides for every community from a few queries (the ``django_migrations``
rows of all schemas, a ``UNION ALL`` per chunk) against the migration graph
read once from disk:

* a community whose schema holds every migration of the graph is skipped: no
  ``migrate`` runs for it (its grants are checked in one catalog query and
  given again only where one is missing, :func:`tenants.roles.schemas_needing_grants`);
* the others are migrated by Django's ``migrate`` (django-tenants'
  ``run_migrations``, so ``schema_migrated`` and its grants follow each), in
  up to ``--parallel`` processes (``MIGRATE_PARALLEL``, by default 2), each
  with its own connection. Progress is printed as each one ends (n/N,
  elapsed). A community that fails is reported and the others go on; the
  command then exits non-zero. What finished is recorded in its schema, so a
  rerun resumes with what is left.

Anything but a plain "migrate to the latest state" (a target migration,
``--fake``, ``--plan``, ``--check``, ``--prune`` and the like) runs
django-tenants' standard executor unchanged: those ask Django about each schema.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import CommandError
from django.db import connection, connections, transaction
from django.db.migrations.loader import MigrationLoader
from django_tenants.migration_executors import get_executor as tenants_get_executor
from django_tenants.migration_executors.base import MigrationExecutor, run_migrations
from django_tenants.migration_executors.standard import StandardExecutor
from django_tenants.signals import schema_migrated

from core.schema import use_public_schema
from tenants.roles import quoted, schemas_needing_grants

CODENAME = "communities"
CHUNK = 200  # schemas per UNION ALL
DEFAULT_PARALLEL = 2
# Options that ask Django something of each schema: those runs go through the standard executor.
_PER_SCHEMA_OPTIONS = ("fake", "fake_initial", "plan", "check_unapplied", "prune", "run_syncdb")

Migration = tuple[str, str]


def get_executor(codename: str | None = None) -> type[MigrationExecutor]:
    """The executor for ``--executor codename``: this module's unless another one is named."""
    codename = codename or os.environ.get("EXECUTOR") or CODENAME
    return CommunityMigrationExecutor if codename == CODENAME else tenants_get_executor(codename)


def graph_migrations() -> dict[Migration, frozenset[Migration]]:
    """Every migration of the graph read from disk, with the migrations it replaces (a squash), if any."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return {key: frozenset(loader.graph.nodes[key].replaces or ()) for key in loader.graph.nodes}


def applied_migrations(schemas: Sequence[str]) -> dict[str, set[Migration]]:
    """The migrations recorded in each schema's ``django_migrations``; a schema without that table is absent.

    One catalog query, then one ``UNION ALL`` per :data:`CHUNK` schemas.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema FROM information_schema.tables "
            "WHERE table_name = 'django_migrations' AND table_schema = ANY(%s)",
            [list(schemas)],
        )
        recorded = sorted(str(row[0]) for row in cursor.fetchall())
        applied: dict[str, set[Migration]] = {schema: set() for schema in recorded}
        for start in range(0, len(recorded), CHUNK):
            chunk = recorded[start : start + CHUNK]
            union = " UNION ALL ".join(
                f"SELECT %s, app, name FROM {quoted(schema)}.django_migrations"  # noqa: S608  # nosec B608 - quoted names from the catalog
                for schema in chunk
            )
            cursor.execute(union, chunk)
            for schema, app, name in cursor.fetchall():
                applied[schema].add((app, name))
    return applied


def is_current(applied: set[Migration], graph: dict[Migration, frozenset[Migration]]) -> bool:
    """Whether ``migrate`` would apply nothing: every migration of the graph (or all it replaces) is recorded."""
    return all(key in applied or (replaces and replaces <= applied) for key, replaces in graph.items())


def pending_schemas(schemas: Sequence[str]) -> list[str]:
    """Those of ``schemas`` that ``migrate`` would change, in the order given."""
    graph = graph_migrations()
    applied = applied_migrations(schemas)
    return [schema for schema in schemas if schema not in applied or not is_current(applied[schema], graph)]


@dataclass
class Outcome:
    """How the migration of one community ended: ``error`` is empty when it succeeded."""

    schema: str
    error: str = ""


@dataclass
class Progress:
    """Counts and clock of a run, printed one line per community as it ends."""

    total: int
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: list[str] = field(default_factory=list)

    def record(self, outcome: Outcome, *, verbosity: int) -> None:
        """Count ``outcome`` and print its line (a failure whatever the verbosity)."""
        self.done += 1
        elapsed = time.monotonic() - self.started
        if outcome.error:
            self.failed.append(outcome.schema)
            message = f"[{self.done}/{self.total} {elapsed:.1f} s] {outcome.schema}: FAILED: {outcome.error}\n"
            sys.stderr.write(message)
        elif verbosity >= 1:
            sys.stdout.write(f"[{self.done}/{self.total} {elapsed:.1f} s] {outcome.schema}: migrated\n")
        sys.stdout.flush()


def _migrate_one(args: tuple[Any, ...], options: dict[str, Any], schema: str) -> Outcome:
    """Django's ``migrate`` for one schema (in a worker process); its failure returned, not raised."""
    try:
        run_migrations(args, options, CODENAME, schema, allow_atomic=False)
    except Exception as error:  # noqa: BLE001  # reported with the community; the others go on
        connections.close_all()
        use_public_schema()
        return Outcome(schema, f"{type(error).__name__}: {error}".splitlines()[0][:500])
    return Outcome(schema)


def _pool_migrate(job: tuple[tuple[Any, ...], dict[str, Any], str]) -> Outcome:
    return _migrate_one(*job)


class CommunityMigrationExecutor(MigrationExecutor):
    """The public schema as django-tenants migrates it; then only the communities with something pending."""

    codename = CODENAME

    def run_migrations(self, tenants: Iterable[str] | None = None) -> None:
        """Migrate ``tenants`` (the public schema first, alone), skipping those at the latest state.

        Raises:
            CommandError: one or more communities failed (each is named; the others were migrated).
        """
        schemas = list(tenants or [])
        if self.PUBLIC_SCHEMA_NAME in schemas:
            schemas.remove(self.PUBLIC_SCHEMA_NAME)
            run_migrations(self.args, self.options, self.codename, self.PUBLIC_SCHEMA_NAME)
        if not schemas:
            return
        if self._asks_each_schema():
            StandardExecutor(self.args, self.options).run_migrations(tenants=schemas)
            return
        verbosity = int(self.options.get("verbosity", 1))
        started = time.monotonic()
        pending = pending_schemas(schemas)
        skipped = [schema for schema in schemas if schema not in set(pending)]
        self._grant_where_missing(skipped)
        if verbosity >= 1:
            sys.stdout.write(
                f"communities: {len(schemas)}, at the latest state: {len(skipped)}, to migrate: {len(pending)} "
                f"(decided in {time.monotonic() - started:.1f} s)\n"
            )
        if pending:
            self._migrate(pending, verbosity=verbosity)

    def _asks_each_schema(self) -> bool:
        return bool(self.args or self.options.get("app_label") or any(self.options.get(o) for o in _PER_SCHEMA_OPTIONS))

    def _grant_where_missing(self, schemas: list[str]) -> None:
        """What ``schema_migrated`` would have granted after a migration, for the skipped schemas that lack it."""
        for schema in schemas_needing_grants(schemas):
            schema_migrated.send(run_migrations, schema_name=schema)

    def _parallel(self) -> int:
        chosen = self.options.get("parallel") or int(os.environ.get("MIGRATE_PARALLEL", DEFAULT_PARALLEL))
        return max(1, int(chosen))

    def _migrate(self, pending: list[str], *, verbosity: int) -> None:
        progress = Progress(total=len(pending))
        worker_options = {**self.options, "verbosity": max(0, verbosity - 1)}
        processes = min(self._parallel(), len(pending))
        if transaction.get_connection().in_atomic_block:
            # Inside a caller's transaction (a community being created): as django-tenants does, errors raised.
            StandardExecutor(self.args, self.options).run_migrations(tenants=pending)
            return
        if processes == 1:
            for schema in pending:
                progress.record(_migrate_one(self.args, self.options, schema), verbosity=verbosity)
        else:
            connections.close_all()  # each worker opens its own
            jobs = [(self.args, worker_options, schema) for schema in pending]
            with multiprocessing.get_context("fork").Pool(processes=processes) as pool:
                for outcome in pool.imap_unordered(_pool_migrate, jobs):
                    progress.record(outcome, verbosity=verbosity)
        if verbosity >= 1:
            sys.stdout.write(
                f"migrated {progress.done - len(progress.failed)} of {progress.total} communities "
                f"in {time.monotonic() - progress.started:.1f} s ({processes} at a time)\n"
            )
        if progress.failed:
            raise CommandError(
                f"{len(progress.failed)} of {progress.total} communities failed to migrate "
                f"(rerun to retry them; the others are done): {', '.join(sorted(progress.failed))}"
            )
