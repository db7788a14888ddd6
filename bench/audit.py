"""``make bench`` (audit part): append rate, and export and offline verification of a million events.

Uses a scratch community (schema ``benchaudit``) in the test database, dropped
at the end. Appends are measured one transaction each, as requests make them,
from one writer and from several processes at once (requests run in
parallel); each commit is chained by its own process unless another holds the
chain's lock, and the chain is verified afterwards.
The million-event log is then loaded with COPY (hashes computed the same way
the service does), exported and verified by the real commands in child
processes, whose peak resident memory is reported.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
# Keys of its own: a test run at the same time restores the suite's key file after every test.
os.environ.setdefault("AUDIT_CHAIN_SIGNAL_MS", "50")  # the production default (the suite asks on every commit)
os.environ.setdefault("TEST_LOCAL_KEY_FILE", str(Path(tempfile.gettempdir()) / "cgw-bench-audit-keys.json"))

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, connections, transaction  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django_tenants.utils import schema_context  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from bench.machine import Steal, stolen  # noqa: E402
from config.celery import app as celery_app  # noqa: E402
from core.redis import get_redis  # noqa: E402
from security.audit.checkpoints import checkpoint_at, published_keys  # noqa: E402
from security.audit.hashing import CHAINED_FIELDS, GENESIS, leaf_hash, link  # noqa: E402
from security.audit.live import verify_live  # noqa: E402
from security.audit.models import PendingEvent  # noqa: E402
from security.audit.sequencer import audit_chain, queued_flag  # noqa: E402
from security.audit.staging import audit_append  # noqa: E402
from tenants.lifecycle import community_create  # noqa: E402
from tenants.models import Community  # noqa: E402

SLUG = "benchaudit"
EVENTS = int(os.environ.get("BENCH_AUDIT_EVENTS", "1000000"))
WRITERS = int(os.environ.get("BENCH_AUDIT_WRITERS", "8"))  # concurrent requests writing to one community
START = datetime(2020, 1, 1, tzinfo=UTC)


def bench_appends(count: int = 6000) -> None:
    """Appends as requests make them (one commit each), chained by a real Celery worker; then the sequencer alone."""
    clear_log()
    get_redis().delete(queued_flag(SLUG))  # an interrupted run's flag would keep requests from asking
    with chain_worker():
        for writers in sorted({1, 4, WRITERS}):
            committed, chained, machine = _concurrent_appends(writers, count)
            label = f"audit appends, one community, {writers} writer{'s' if writers > 1 else ''}"
            print(f"{label:<48} {committed:12,.0f} events/s committed, {chained:,.0f}/s chained ({machine})")
            if machine.busy_seconds is not None:  # every process's CPU time: steal does not inflate it
                print(f"{'  CPU time per event, all processes':<48} {machine.busy_seconds / count * 1e6:12,.0f} us")
    with schema_context(SLUG):
        result = verify_live()
    print(f"{'  chain after the appends':<48} {'intact' if result.intact else result.problem}, {result.checked} events")
    with schema_context(SLUG), transaction.atomic():
        _stage(count, 0)
        with stolen() as steal:
            started = time.perf_counter()
            chained = audit_chain()
            rate = chained / (time.perf_counter() - started)
        transaction.set_rollback(True)  # measured; nothing to keep
    print(f"{'sequencer alone (staged events chained)':<48} {rate:12,.0f} events/s ({steal})")


@contextlib.contextmanager
def chain_worker() -> Iterator[None]:
    """A Celery worker on the ``audit`` queue, against the test database, for the length of the block."""
    with celery_app.connection_for_write() as broker:  # not the app's pool: forked writers would share it
        celery_app.control.purge(connection=broker)  # what earlier runs left queued
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "audit", "-l", "warning"]
    worker = subprocess.Popen(  # noqa: S603
        [*command, "-P", "threads", "-c", os.environ.get("BENCH_AUDIT_WORKER_THREADS", "4")],
        env=child_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with celery_app.connection_for_write() as broker:
            for _ in range(60):
                if celery_app.control.ping(timeout=0.5, connection=broker):
                    break
            else:
                raise SystemExit("the chain worker did not start")
        yield
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def _concurrent_appends(writers: int, count: int) -> tuple[float, float, Steal]:
    """``count`` events from ``writers`` processes, one commit each: committed and chained per second, the machine."""
    context = multiprocessing.get_context("fork")
    go = context.Event()
    connections.close_all()  # a forked child must not share the parent's database connection
    processes = [context.Process(target=_writer, args=(go, count // writers, n)) for n in range(writers)]
    for process in processes:
        process.start()
    time.sleep(0.5)  # let every writer connect first
    with stolen() as machine:
        started = time.perf_counter()
        go.set()
        for process in processes:
            process.join()
        committed = time.perf_counter() - started
        with schema_context(SLUG):
            while PendingEvent.objects.exists():
                time.sleep(0.005)
        chained = time.perf_counter() - started
    total = (count // writers) * writers
    return total / committed, total / chained, machine


def _writer(go: Any, count: int, number: int) -> None:
    with schema_context(SLUG):
        PendingEvent.objects.exists()  # connect before the start
        go.wait()
        _stage(count, number)
    connections.close_all()


def _stage(count: int, number: int) -> None:
    for n in range(count):
        audit_append(
            actor_id="00000000-0000-0000-0000-000000000001",
            actor_roles=["coordinator"],
            action="participant.read",
            resource_type="participant",
            resource_id=f"{number}-{n:08d}",
            participant_pseudonyms=["P-ABCDEFGHJK"],
            outcome="allow",
            decision_id=f"d-{n}",
            reasons=["role_grants_action"],
            request_id=f"r-{n}",
            client_ip="192.0.2.1",
            user_agent="bench",
            http_status=200,
        )


def _rows(first: int, count: int, previous: str) -> tuple[list[tuple[object, ...]], str]:
    rows = []
    for sequence in range(first, first + count):
        values = {
            "sequence": sequence,
            "occurred_at": START + timedelta(milliseconds=sequence * 50),
            "actor_id": "00000000-0000-0000-0000-000000000001",
            "actor_roles": ["coordinator"],
            "action": "participant.read",
            "resource_type": "participant",
            "resource_id": f"{sequence:08d}",
            "participant_pseudonyms": ["P-ABCDEFGHJK"],
            "purpose": "research_use",
            "outcome": "allow",
            "http_status": 200,
            "decision_id": f"d-{sequence}",
            "policy_revision": "bench",
            "reasons": ["role_grants_action"],
            "request_id": f"r-{sequence}",
            "client_ip": "192.0.2.1",
            "user_agent": "bench",
            "break_glass": False,
        }
        current = link(previous, leaf_hash(values))
        row = [values[name] for name in CHAINED_FIELDS]
        for index, name in enumerate(CHAINED_FIELDS):
            if name in ("actor_roles", "reasons"):
                row[index] = Jsonb(row[index])
        rows.append((*row, previous, current))
        previous = current
    return rows, previous


def clear_log() -> None:
    """Empty the scratch community's log (the guard switched off for it)."""
    with schema_context(SLUG), connection.cursor() as cursor:
        for table in ("audit_auditevent", "audit_pendingevent", "audit_checkpoint"):
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")  # constant names, not input
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def load_log(count: int) -> None:
    """A chain of ``count`` events, by COPY, with a checkpoint every 10,000."""
    with schema_context(SLUG):
        clear_log()
        started, previous, done = time.perf_counter(), GENESIS, 0
        columns = ", ".join((*CHAINED_FIELDS, "previous_hash", "entry_hash"))
        while done < count:
            batch = min(50_000, count - done)
            rows, previous = _rows(done + 1, batch, previous)
            with (
                connection.cursor() as cursor,
                # The driver's own cursor skips the backend's per-transaction search_path: the schema is named.
                cursor.cursor.copy(f'COPY "{SLUG}".audit_auditevent ({columns}) FROM STDIN') as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            done += batch
        # The writers' processes wrote the local key file after this one read it: ask for the key again.
        published_keys.clear()
        for sequence in range(10_000, count + 1, 10_000):
            checkpoint_at(sequence)
        print(
            f"{'loaded a chain of events (hash + COPY)':<48} {count / (time.perf_counter() - started):12,.0f} events/s"
        )


def child_environment() -> dict[str, str]:
    """A child process's environment: test settings, this run's test database and key file."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": settings.DATABASE_URL.rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"],
    }


def child(arguments: list[str]) -> tuple[float, float, str]:
    """Run a manage.py command in a child process: seconds, its own peak RSS in MB, output.

    The peak is the kernel's high-water mark of the command's own memory
    (``VmHWM``), read while it runs: ``wait4``'s figure would also count the
    memory of this process, which the child had before it ran the command.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "manage.py", *arguments], env=child_environment(), stdout=out, stderr=err
        )
        peak = 0
        while process.poll() is None:
            peak = max(peak, _high_water_kib(process.pid))
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if process.returncode:
            raise SystemExit(f"{arguments[0]} failed: {err.read().decode(errors='replace').strip()}")
        return elapsed, peak / 1024, out.read().decode(errors="replace").strip()


def _high_water_kib(pid: int) -> int:
    """The process's peak resident memory so far (KiB), 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def report(label: str, seconds: float, count: int, peak: float, steal: Steal) -> None:
    """One line: time, rate, peak resident memory, and how much CPU time the host took meanwhile."""
    print(f"{label:<48} {seconds:9.1f} s  {count / seconds:10,.0f} events/s  peak RSS {peak:6.0f} MB  ({steal})")


def bench_export_and_verify(count: int) -> None:
    """Export all events as jsonl, then verify the file offline; rates and peak memory."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "bench.jsonl"
        keys = Path(directory) / "keys.pem"
        child(["audit_keys", "--community", SLUG, "--out", str(keys)])
        until = (START + timedelta(milliseconds=(count + 1) * 50)).isoformat()
        with stolen() as steal:
            seconds, peak, _ = child(
                ["audit_export", "--community", SLUG, "--since", START.isoformat(), "--until", until, "--out", str(out)]
            )
        size = out.stat().st_size / 1e6
        report(f"export {count:,} events (jsonl, {size:,.0f} MB)", seconds, count, peak, steal)
        with stolen() as steal:
            seconds, peak, _ = child(["audit_verify", "--export", str(out), "--public-key", str(keys)])
        report(f"verify {count:,} events offline", seconds, count, peak, steal)


def main() -> None:
    """Create the scratch community, measure, drop it."""
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0, keepdb=True)
    print("audit benchmarks (2 cores; real PostgreSQL on loopback; local signing key)")
    if not Community.objects.filter(slug=SLUG).exists():
        community_create(slug=SLUG, name="Audit bench", domain=f"{SLUG}.localhost", actor_id="operator:bench")
    try:
        bench_appends()
        load_log(EVENTS)
        bench_export_and_verify(EVENTS)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {SLUG} CASCADE")  # a constant name, not input
        Community.objects.filter(slug=SLUG).delete()


if __name__ == "__main__":
    main()
