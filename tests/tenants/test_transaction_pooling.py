"""Behind PgBouncer in transaction mode, no statement runs in another community's schema.

A real PgBouncer (tests/support/pgbouncer.py) in transaction mode, with one or
two server connections for every client, sits in front of the test database.
Each community's schema holds a probe table naming its community, and a study
whose title names it, committed for real; the public schema has no probe
table, so a statement that finds the public path fails loudly. Clients of the
two communities then take turns, or run at once, through the pooler, with the
shipped settings for it (``DATABASE_TRANSACTION_POOLING``): transactions,
statements outside any transaction, savepoints rolled back, schema switches
inside a transaction, and the ORM. Every answer must name the community the
client selected.

django-tenants' own backend (a session-level ``SET`` once per connection) is
run through the same sequence and must be caught: that is the proof the
sequence can see a leak at all.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import DatabaseError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django_tenants.postgresql_backend import base as django_tenants_backend
from django_tenants.utils import schema_context

from config.settings.base import database_settings
from services.studies.models import Study
from tenants.backend.base import DatabaseWrapper
from tests.factories import StudyFactory
from tests.support.commits import empty_community_tables
from tests.support.pgbouncer import Bouncer, pgbouncer

SLUGS = ("alpha", "beta")
SCHEMAS = ("public", *SLUGS)
PROBE = "SELECT community FROM pooling_probe"
CLIENTS = 12
UNITS_PER_CLIENT = 40


@pytest.fixture(scope="module")
def probed(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """A probe table in each community's schema naming it, and a study titled after it, committed."""
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            for slug in SCHEMAS:
                cursor.execute(f'CREATE TABLE "{slug}".pooling_probe (community text NOT NULL)')
                cursor.execute(f'INSERT INTO "{slug}".pooling_probe VALUES (%s)', [slug])  # noqa: S608 - fixed names
                cursor.execute(f'GRANT SELECT ON "{slug}".pooling_probe TO "{settings.DATABASE_SERVICE_ROLE}"')
        for slug in SLUGS:
            with schema_context(slug):
                StudyFactory.create(title=f"{slug} study")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                for slug in SCHEMAS:
                    cursor.execute(f'DROP TABLE IF EXISTS "{slug}".pooling_probe')
            for slug in SLUGS:
                empty_community_tables(slug, ("studies_study",))


@pytest.fixture(scope="module")
def one_server_connection(probed: None) -> Iterator[Bouncer]:
    """PgBouncer with a single server connection: every client's every transaction runs on the same one."""
    with pgbouncer(_database(), users=_users(), pool_size=1) as bouncer:
        yield bouncer


@pytest.fixture(scope="module")
def two_server_connections(probed: None) -> Iterator[Bouncer]:
    """PgBouncer with two server connections for many clients."""
    with pgbouncer(_database(), users=_users(), pool_size=2) as bouncer:
        yield bouncer


def _database() -> str:
    return str(connection.settings_dict["NAME"])


def _users() -> tuple[str, ...]:
    return (settings.DATABASE_SERVICE_ROLE, str(connection.settings_dict["USER"]))


class SessionLevel(DatabaseWrapper):
    """The mutation: the same backend with a session-level ``SET`` (``set_config(..., false)``) instead."""

    set_path_sql = "SELECT set_config('search_path', %s, false)"


Backend = type[BaseDatabaseWrapper]


def pooled(bouncer: Bouncer, alias: str, *, backend: Backend = DatabaseWrapper) -> BaseDatabaseWrapper:
    """A connection through ``bouncer`` as the service's role, with the shipped settings for transaction pooling."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_TRANSACTION_POOLING", "true")
        entry = database_settings(f"postgres://{settings.DATABASE_SERVICE_ROLE}@127.0.0.1:{bouncer.port}/{_database()}")
    entry["CONN_MAX_AGE"] = 0
    configured = connections.configure_settings({"default": entry})["default"]
    return backend(configured, alias)


def _probe(client: BaseDatabaseWrapper) -> str:
    with client.cursor() as cursor:
        cursor.execute(PROBE)
        row = cursor.fetchone()
    return str(row[0]) if row else ""


def _turns(clients: dict[str, BaseDatabaseWrapper]) -> list[tuple[str, str]]:
    """The clients, each in its own schema, take turns: (selected, found) for every statement."""
    seen: list[tuple[str, str]] = []

    def record(client: BaseDatabaseWrapper, slug: str) -> None:
        try:
            seen.append((slug, _probe(client)))
        except DatabaseError:  # no probe table on the path found
            seen.append((slug, "<none>"))

    for slug, client in clients.items():  # each stays in its schema, as a task working through one does
        client.set_schema(slug)  # type: ignore[attr-defined]  # django-tenants' backend
    for _ in range(3):
        for slug, client in clients.items():
            record(client, slug)  # outside a transaction
            with _Committed(client):
                record(client, slug)
                record(client, slug)
    return seen


# Ours; the same with a session-level SET; django-tenants' own, trusting the path it set once per connection.
BACKENDS = [(DatabaseWrapper, False), (SessionLevel, True), (django_tenants_backend.DatabaseWrapper, True)]


@pytest.mark.parametrize(("backend", "leaks"), BACKENDS, ids=["set-local", "session-set", "django-tenants"])
def test_clients_taking_turns_on_one_server_connection_each_see_only_their_schema(
    one_server_connection: Bouncer, backend: Backend, leaks: bool, settings: Any
) -> None:
    settings.TENANT_LIMIT_SET_CALLS = True  # django-tenants' setting for it (the others ignore it)
    clients = {slug: pooled(one_server_connection, f"pooled-{slug}", backend=backend) for slug in SCHEMAS}
    try:
        seen = _turns(clients)
    finally:
        for client in clients.values():
            client.close()
    wrong = [(selected, found) for selected, found in seen if selected != found]
    assert bool(wrong) is leaks, wrong
    assert len(seen) == 27


@pytest.mark.parametrize(("backend", "leaks"), BACKENDS[:2], ids=["set-local", "session-set"])
def test_a_server_connection_goes_back_to_the_pool_with_the_default_path(
    one_server_connection: Bouncer, backend: Backend, leaks: bool
) -> None:
    client = pooled(one_server_connection, "pooled-leaver", backend=backend)
    try:
        client.set_schema("alpha")  # type: ignore[attr-defined]  # django-tenants' backend
        assert _probe(client) == "alpha"
        with _Committed(client):
            assert _probe(client) == "alpha"
    finally:
        client.close()
    with (
        psycopg.connect(
            host="127.0.0.1", port=one_server_connection.port, dbname=_database(), user=settings.DATABASE_SERVICE_ROLE
        ) as other,
        other.cursor() as cursor,
    ):
        cursor.execute("SHOW search_path")
        row = cursor.fetchone()
    assert row is not None
    assert ("alpha" in str(row[0])) is leaks, row[0]


class _Committed:
    """One transaction on ``client``, committed on exit (rolled back on an error)."""

    def __init__(self, client: BaseDatabaseWrapper) -> None:
        self.client = client

    def __enter__(self) -> None:
        self.client.set_autocommit(False)

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.client.commit()
        else:
            self.client.rollback()
        self.client.set_autocommit(True)


def test_a_schema_switch_inside_a_transaction_and_a_savepoint_rolled_back_keep_the_path_right(
    one_server_connection: Bouncer,
) -> None:
    client = pooled(one_server_connection, "default")
    try:
        with _Committed(client):
            client.set_schema("alpha")  # type: ignore[attr-defined]  # django-tenants' backend
            assert _probe(client) == "alpha"
            savepoint = client.savepoint()
            assert savepoint is not None
            client.set_schema("beta")  # type: ignore[attr-defined]  # django-tenants' backend
            assert _probe(client) == "beta"  # set after the savepoint ...
            client.savepoint_rollback(savepoint)  # ... and reverted with it
            assert _probe(client) == "beta"
            client.set_schema("alpha")  # type: ignore[attr-defined]  # django-tenants' backend
            assert _probe(client) == "alpha"
    finally:
        client.close()


def test_a_transaction_may_still_begin_with_its_isolation_level(one_server_connection: Bouncer) -> None:
    client = pooled(one_server_connection, "default")
    try:
        client.set_schema("beta")  # type: ignore[attr-defined]  # django-tenants' backend
        with _Committed(client), client.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # before the path, as PostgreSQL asks
            cursor.execute("SHOW transaction_isolation")
            isolation = cursor.fetchone()
            assert _probe(client) == "beta"
    finally:
        client.close()
    assert isolation == ("repeatable read",)


def test_a_statement_prepared_in_one_schema_runs_in_the_schema_selected_later(probed: None) -> None:
    """Prepared statements on a direct connection (psycopg prepares every statement here): planned again per path."""
    options = {"server_side_binding": True, "prepare_threshold": 0}
    entry = {**connection.settings_dict, "OPTIONS": options, "CONN_MAX_AGE": 0}
    client = DatabaseWrapper(entry, "prepared")
    try:
        found = []
        for slug in (*SLUGS, *SLUGS):
            with _Committed(client):
                client.set_schema(slug)
                found.append(_probe(client))
        with client.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement = %s", [PROBE])
            prepared = cursor.fetchone()
    finally:
        client.close()
    assert found == [*SLUGS, *SLUGS]
    assert prepared is not None
    assert prepared[0] == 1  # one prepared statement served both schemas


def _unit(number: int, slug: str) -> list[tuple[str, str]]:
    """One request's or task's worth of work in ``slug`` on this thread's (pooled) default connection."""
    found: list[tuple[str, str]] = []
    with schema_context(slug):
        if slug == "public":  # the platform: the public schema's path is the role's default, never set
            found.append((slug, _probe(connection)))
            with transaction.atomic():
                found.append((slug, _probe(connection)))
        elif number % 2:  # a request: one transaction, with a savepoint rolled back inside it
            with transaction.atomic():
                found.append((slug, _probe(connection)))
                try:
                    with transaction.atomic():
                        found += [(slug, title.split()[0]) for title in Study.objects.values_list("title", flat=True)]
                        raise _RolledBack
                except _RolledBack:
                    pass
                found.append((slug, _probe(connection)))
        else:  # a task: statements outside any transaction, ORM included
            found.append((slug, _probe(connection)))
            found += [(slug, title.split()[0]) for title in Study.objects.values_list("title", flat=True)]
    return found


class _RolledBack(Exception):
    """Leaves a savepoint by rolling it back."""


def _client(bouncer: Bouncer, seed: int, start: threading.Barrier) -> list[tuple[str, str]]:
    connections["default"] = pooled(bouncer, "default")  # this thread's own connection, through the pooler
    order = random.Random(seed)  # noqa: S311 - an order, not a secret
    found: list[tuple[str, str]] = []
    start.wait()
    try:
        for number in range(UNITS_PER_CLIENT):
            found += _unit(number + seed, order.choice(SCHEMAS))
    finally:
        connection.close()
    return found


def test_many_clients_of_two_communities_and_the_platform_at_once_through_two_server_connections_stay_put(
    two_server_connections: Bouncer, django_db_blocker: Any
) -> None:
    start = threading.Barrier(CLIENTS)
    work: Callable[[int], list[tuple[str, str]]] = lambda seed: _client(two_server_connections, seed, start)  # noqa: E731
    with django_db_blocker.unblock(), ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        results = [found for client in pool.map(work, range(CLIENTS)) for found in client]
    wrong = [(selected, found) for selected, found in results if selected != found]
    assert wrong == []
    assert len(results) >= CLIENTS * UNITS_PER_CLIENT * 2  # two to three statements a unit
    assert {selected for selected, _ in results} == set(SCHEMAS)
