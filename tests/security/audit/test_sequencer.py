"""Staging and chaining: an event commits with its request, and the sequencer chains it without gaps."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import DatabaseError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings
from redis.exceptions import ConnectionError as RedisConnectionError

from core.redis import get_redis
from security.audit.live import verify_live
from security.audit.models import AuditEvent, PendingEvent
from security.audit.sequencer import CHAIN_BATCH, audit_chain, chain_later, queued_flag
from security.audit.staging import audit_append
from security.audit.tasks import chain_all, chain_schema
from tenants.models import Community

AUDIT_TABLES = ("audit_auditevent", "audit_pendingevent", "audit_checkpoint")


def read(n: int, **fields: Any) -> None:
    audit_append(action="participant.read", resource_type="participant", resource_id=f"p-{n}", **fields)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The schemas whose chaining was handed to a worker (the broker is not asked)."""
    asked: list[str] = []
    monkeypatch.setattr(chain_schema, "apply_async", lambda args, **_: asked.extend(args))
    return asked


def test_a_staged_event_takes_no_lock_and_a_worker_chains_it_after_the_commit(
    alpha: Community, queued: list[str], django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    with schema_context("alpha"):
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            with CaptureQueriesContext(connection) as staged:
                read(1)
            assert [query["sql"].split()[0] for query in staged.captured_queries] == ["INSERT"]
            assert PendingEvent.objects.count() == 1
        assert queued == ["alpha"]
        assert not AuditEvent.objects.exists()

        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            read(2)
        assert queued == ["alpha"], "one queued task per community at a time"

        assert chain_schema("alpha") == 2
        assert not PendingEvent.objects.exists()
        assert list(AuditEvent.objects.values_list("sequence", "resource_id")) == [(1, "p-1"), (2, "p-2")]

        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            read(3)
        assert queued == ["alpha", "alpha"], "once the worker has started, a new commit asks again"


def test_without_a_broker_the_next_commit_asks_again(
    alpha: Community,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        raise ConnectionRefusedError

    monkeypatch.setattr(chain_schema, "apply_async", refuse)
    with schema_context("alpha"):
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            read(1)
        assert get_redis().get(queued_flag("alpha")) is None
        assert PendingEvent.objects.count() == 1, "the event stays staged, committed with its request"


def test_without_redis_the_request_still_commits_its_event(
    alpha: Community, queued: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable() -> None:
        raise RedisConnectionError

    monkeypatch.setattr("security.audit.sequencer.get_redis", unavailable)
    with schema_context("alpha"):
        with transaction.atomic():
            read(1)
        chain_later("alpha")
        assert queued == []
        assert audit_chain() == 1


def test_a_rolled_back_request_leaves_no_event(alpha: Community) -> None:
    with schema_context("alpha"):
        with transaction.atomic():
            read(1)
            transaction.set_rollback(True)  # what the view's failure does
        assert audit_chain() == 0
        assert not AuditEvent.objects.exists()


def test_batches_chain_in_staging_order_without_gaps(alpha: Community) -> None:
    with schema_context("alpha"):
        for n in range(CHAIN_BATCH + 3):
            read(n)
        assert audit_chain(rounds=1) == CHAIN_BATCH
        assert PendingEvent.objects.count() == 3
        assert audit_chain() == 3
        events = list(AuditEvent.objects.values_list("sequence", "resource_id"))
        assert events == [(n + 1, f"p-{n}") for n in range(CHAIN_BATCH + 3)]
        assert verify_live().checked == CHAIN_BATCH + 3


def test_a_second_sequencer_waits_for_the_first_and_finds_its_rows_gone(alpha: Community) -> None:
    """While another connection holds alpha's chain lock, chaining waits for it rather than chaining twice."""
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"], port=settings["PORT"]
    ) as other:
        other.execute("BEGIN")
        other.execute("SELECT pg_advisory_xact_lock(hashtext('audit-chain:alpha'))")
        with schema_context("alpha"):
            read(1)
        waiter = threading.Timer(0.3, lambda: other.execute("ROLLBACK"))
        waiter.start()
        started = time.monotonic()
        with schema_context("alpha"):
            assert audit_chain() == 1
        assert time.monotonic() - started >= 0.25
        waiter.join()


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_pendingevent SET entry = '{}'", "DELETE FROM audit_pendingevent", "TRUNCATE audit_pendingevent"],
)
def test_staged_events_cannot_be_edited_or_dropped(statement: str, alpha: Community) -> None:
    with schema_context("alpha"):
        read(1)
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
        assert audit_chain() == 1


@pytest.mark.parametrize(
    "entry",
    [
        '{"action": "participant.read", "given_name": "Ada", "http_status": 200}',
        "{not json",
        "[1]",
        '{"action": "x"}',
    ],
)
def test_a_staged_row_not_written_by_staging_is_refused_and_cannot_jam_the_chain(entry: str, alpha: Community) -> None:
    with schema_context("alpha"), connection.cursor() as cursor:
        with pytest.raises(DatabaseError), transaction.atomic():
            cursor.execute("INSERT INTO audit_pendingevent (entry) VALUES (%s)", [entry])
        read(1)
        read(2)
        assert audit_chain() == 2
        assert [event.resource_id for event in AuditEvent.objects.order_by("sequence")] == ["p-1", "p-2"]
        assert verify_live().intact


def test_a_staged_row_with_a_field_too_long_for_the_chain_is_refused(alpha: Community) -> None:
    with schema_context("alpha"), connection.cursor() as cursor:
        read(1)
        cursor.execute("SELECT entry FROM audit_pendingevent")
        entry = json.loads(cursor.fetchone()[0])
        with pytest.raises(DatabaseError, match="actor_id"), transaction.atomic():
            cursor.execute(
                "INSERT INTO audit_pendingevent (entry) VALUES (%s)", [json.dumps({**entry, "actor_id": "u" * 65})]
            )
        assert audit_chain() == 1


def test_the_periodic_sweep_chains_what_nobody_asked_for(alpha: Community) -> None:
    with schema_context("alpha"):
        read(1)  # staged; its transaction has not committed, so nobody was asked
    assert chain_all() >= 1
    with schema_context("alpha"):
        assert not PendingEvent.objects.exists()
        assert AuditEvent.objects.get().resource_id == "p-1"


@pytest.fixture
def committed(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Real commits in alpha's audit tables (no test transaction), cleared afterwards with the guard off."""
    with django_db_blocker.unblock():
        try:
            yield
        finally:
            with schema_context("alpha"), connection.cursor() as cursor:
                for table in AUDIT_TABLES:
                    cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")  # test-only, constant names
                    cursor.execute(f"DELETE FROM {table}")  # noqa: S608
                    cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def test_concurrent_requests_and_one_worker_leave_nothing_staged_and_one_gapless_chain(
    committed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four writers commit 60 events each while a worker runs the chain tasks they ask for, as Celery would."""
    tasks: queue.Queue[str | None] = queue.Queue()
    monkeypatch.setattr(chain_schema, "apply_async", lambda args, **_: tasks.put(args[0]))
    failures: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            with schema_context("alpha"):
                for n in range(60):
                    with transaction.atomic():
                        read(n, actor_id=f"writer-{number}")
        except BaseException as error:  # noqa: BLE001  # reported by the main thread
            failures.append(error)
        finally:
            connections.close_all()

    def worker() -> None:
        try:
            while (schema := tasks.get()) is not None:
                chain_schema(schema)
        finally:
            connections.close_all()

    consumer = threading.Thread(target=worker)
    consumer.start()
    writers = [threading.Thread(target=writer, args=(number,)) for number in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    tasks.put(None)  # after every task the writers asked for
    consumer.join()

    assert not failures
    with schema_context("alpha"):
        assert not PendingEvent.objects.exists()
        result = verify_live()
        assert result.intact, result.problem
        assert result.checked == 240
        counts = [AuditEvent.objects.filter(actor_id=f"writer-{number}").count() for number in range(4)]
        assert counts == [60, 60, 60, 60]


def test_a_commit_that_skipped_asking_is_chained_by_the_worker_s_second_look(
    committed: None, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process asks once per interval; a commit inside it relies on the task lingering that long."""
    settings.AUDIT_CHAIN_SIGNAL_MS = 1000
    monkeypatch.setattr("security.audit.sequencer._asked", {})
    tasks: queue.Queue[str] = queue.Queue()
    monkeypatch.setattr(chain_schema, "apply_async", lambda args, **_: tasks.put(args[0]))
    results: list[int] = []

    def worker() -> None:
        try:
            results.append(chain_schema(tasks.get(timeout=5)))
        finally:
            connections.close_all()

    with schema_context("alpha"):
        with transaction.atomic():
            read(1)  # commits, and asks
        consumer = threading.Thread(target=worker)
        consumer.start()
        deadline = time.monotonic() + 0.8
        while PendingEvent.objects.exists() and time.monotonic() < deadline:  # the worker's first look
            time.sleep(0.01)
        assert not PendingEvent.objects.exists()
        with transaction.atomic():
            read(2)  # commits within the interval: does not ask
        assert tasks.empty()
        consumer.join()
        assert results == [2]
        assert not PendingEvent.objects.exists()
        assert list(AuditEvent.objects.values_list("resource_id", flat=True)) == ["p-1", "p-2"]


def test_a_task_still_busy_after_its_time_hands_over_to_a_new_one(
    alpha: Community, queued: list[str], settings: Settings
) -> None:
    settings.AUDIT_CHAIN_TASK_SECONDS = 0
    with schema_context("alpha"):
        read(1)
        read(2)
    queued.clear()

    assert chain_schema("alpha") == 2

    assert queued == ["alpha"]  # the next task, at the back of the queue
    assert get_redis().exists(queued_flag("alpha"))  # commits meanwhile need not ask
    with schema_context("alpha"):
        assert not PendingEvent.objects.exists()
