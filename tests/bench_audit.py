"""``make bench`` (audit part): append rate, and export and offline verification of a million events.

Uses a scratch community (schema ``benchaudit``) in the test database, dropped
at the end. Appends are measured one transaction each, as requests make them.
The million-event log is then loaded with COPY (hashes computed the same way
the service does), exported and verified by the real commands in child
processes, whose peak resident memory is reported.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
# Keys of its own: a test run at the same time restores the suite's key file after every test.
os.environ.setdefault("TEST_LOCAL_KEY_FILE", str(Path(tempfile.gettempdir()) / "cgw-bench-audit-keys.json"))

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django_tenants.utils import schema_context  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from security.audit.chain import CHAINED_FIELDS, GENESIS, audit_append, leaf_hash, link  # noqa: E402
from security.audit.checkpoints import checkpoint_at  # noqa: E402
from tenants.actions import community_create  # noqa: E402
from tenants.models import Community  # noqa: E402

SLUG = "benchaudit"
EVENTS = int(os.environ.get("BENCH_AUDIT_EVENTS", "1000000"))
START = datetime(2020, 1, 1, tzinfo=UTC)


def bench_appends(count: int = 3000) -> None:
    """Appends, each its own transaction (as requests make them), then many in one transaction."""
    rate = _appends(count)
    print(f"{'audit appends, one community, one commit each':<48} {rate:12,.0f} events/s")
    with transaction.atomic():
        rate = _appends(count)
    print(f"{'audit appends, one community, one transaction':<48} {rate:12,.0f} events/s")


def _appends(count: int) -> float:
    with schema_context(SLUG):
        started = time.perf_counter()
        for n in range(count):
            audit_append(
                actor_id="00000000-0000-0000-0000-000000000001",
                actor_roles=["coordinator"],
                action="participant.read",
                resource_type="participant",
                resource_id=f"{n:08d}",
                participant_pseudonyms=["P-ABCDEFGHJK"],
                outcome="allow",
                decision_id=f"d-{n}",
                reasons=["role_grants_action"],
                request_id=f"r-{n}",
                client_ip="192.0.2.1",
                user_agent="bench",
                http_status=200,
            )
        return count / (time.perf_counter() - started)


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


def load_log(count: int) -> None:
    """A chain of ``count`` events, by COPY, with a checkpoint every 10,000."""
    with schema_context(SLUG):
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
            cursor.execute("DELETE FROM audit_auditevent")
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
        started, previous, done = time.perf_counter(), GENESIS, 0
        columns = ", ".join((*CHAINED_FIELDS, "previous_hash", "entry_hash"))
        while done < count:
            batch = min(50_000, count - done)
            rows, previous = _rows(done + 1, batch, previous)
            with (
                connection.cursor() as cursor,
                cursor.cursor.copy(f"COPY audit_auditevent ({columns}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            done += batch
        for sequence in range(10_000, count + 1, 10_000):
            checkpoint_at(sequence)
        print(
            f"{'loaded a chain of events (hash + COPY)':<48} {count / (time.perf_counter() - started):12,.0f} events/s"
        )


def child(arguments: list[str]) -> tuple[float, float, str]:
    """Run a manage.py command in a child process: seconds, peak RSS in MB, output."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": settings.DATABASE_URL.rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"],
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *arguments], env=environment, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode:
        raise SystemExit(f"{arguments[0]} failed: {done.stderr.strip()}")
    return elapsed, max(peak, before) / 1024, done.stdout.strip()


def report(label: str, seconds: float, count: int, peak: float) -> None:
    """One line: time, rate, peak resident memory."""
    print(f"{label:<48} {seconds:9.1f} s  {count / seconds:10,.0f} events/s  peak RSS {peak:6.0f} MB")


def bench_export_and_verify(count: int) -> None:
    """Export all events as jsonl, then verify the file offline; rates and peak memory."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "bench.jsonl"
        keys = Path(directory) / "keys.pem"
        child(["audit_keys", "--out", str(keys)])
        until = (START + timedelta(milliseconds=(count + 1) * 50)).isoformat()
        seconds, peak, _ = child(
            ["audit_export", "--community", SLUG, "--since", START.isoformat(), "--until", until, "--out", str(out)]
        )
        size = out.stat().st_size / 1e6
        report(f"export {count:,} events (jsonl, {size:,.0f} MB)", seconds, count, peak)
        seconds, peak, _ = child(["audit_verify", "--export", str(out), "--public-key", str(keys)])
        report(f"verify {count:,} events offline", seconds, count, peak)


def main() -> None:
    """Create the scratch community, measure, drop it."""
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0, keepdb=True)
    print("audit benchmarks (2 cores; real PostgreSQL on loopback; local signing key)")
    if not Community.objects.filter(slug=SLUG).exists():
        community_create(slug=SLUG, name="Audit bench", domain=f"{SLUG}.localhost")
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
