"""``make bench`` (scale part): a thousand communities, created, migrated, served, and what a worker holds for them.

In one run, in the test database:

1. the secured participant page of :mod:`bench.research` (a principal
   investigator's token, 100 participants with PHI, the whole stack) is timed
   with one community;
2. ``BENCH_SCALE_COMMUNITIES`` (1,000) scratch communities (slugs ``bscale_*``)
   are created with ``community_create``, in two processes, each with a member,
   a session and a participant; one more is created through django-tenants'
   own path (every migration run by Django) for the per-community cost before;
3. ``manage.py migrate`` (the operators' command, a process of its own) with
   nothing pending (target: under 30 s), then with one new migration (a
   scratch app in a temporary directory, a table in every community), undone
   after;
4. the same page timed again with all of them (target: p50 within 10% of one
   community's, which is also timed once more after they are dropped); then
   the resident memory of this process as it serves the page of 1, 100 and all
   the communities (keys, generation caches, compiled policy);
5. gunicorn under wrk (32 connections) on the page with all of them:
   requests/s, audit events appended and chained per second, chain lag (staged
   to chained) with this process chaining every 50 ms as a worker would.

Every scratch community is dropped at the end, and on failure (and what an
interrupted run left, at the start).
"""

from __future__ import annotations

import contextlib
import gc
import json
import multiprocessing
import os
import statistics
import subprocess  # nosec B404 - manage.py and wrk, fixed argument lists
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection, connections
from django.test.utils import override_settings
from django.utils import timezone
from django_tenants.utils import schema_context

from bench import load, research  # django.setup() with the test settings
from bench.machine import stolen
from bench.scratch import drop_scratch_community
from core.redis import get_redis
from security.audit.sequencer import queued_flag
from security.identity.tokens import issue_access_token
from security.models import AuthSession, User
from services.consents.models import Consent
from services.participants.models import Participant
from services.studies.models import Study, StudyStatus
from tenants.lifecycle import community_create
from tenants.models import Community
from tests.factories import MembershipFactory, UserFactory
from vault.keys import cache as data_key_cache

COUNT = int(os.environ.get("BENCH_SCALE_COMMUNITIES", "1000"))
PREFIX = "bscale_"
BEFORE_SLUG = "bscale_django_path"
PROCESSES = int(os.environ.get("BENCH_SCALE_PROCESSES", "2"))
LATENCY_SECONDS = float(os.environ.get("BENCH_SCALE_LATENCY_SECONDS", "15"))
LOAD_SECONDS = int(os.environ.get("BENCH_SCALE_LOAD_SECONDS", "10"))
MIGRATE_TARGET_SECONDS = 30.0
LATENCY_TARGET = 1.10
PROBE_APP = "bench_scale_probe"
PROBE_TABLE = "bench_scale_probe_note"
MEMBER_EMAIL = f"pi@{PREFIX}bench.example.org"


def slug_of(number: int) -> str:
    """The scratch community ``number``'s slug."""
    return f"{PREFIX}{number:05d}"


def host_of(slug: str) -> str:
    """The scratch community's host name."""
    return f"{slug.replace('_', '-')}.localhost"


# --- scratch communities ----------------------------------------------------------------


def drop_scratch() -> float:
    """Drop every scratch community (and an interrupted run's schemas); the seconds it took."""
    started = time.perf_counter()
    research.drop_community()
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", [PREFIX + "%"])
        schemas = {str(row[0]) for row in cursor.fetchall()}
    schemas |= set(Community.objects.filter(slug__startswith=PREFIX).values_list("slug", flat=True))
    for slug in sorted(schemas):
        drop_scratch_community(slug)
    User.objects.filter(email=MEMBER_EMAIL).delete()
    return time.perf_counter() - started


def _create_range(numbers: list[int]) -> list[tuple[str, str]]:
    """In a worker process: create communities ``numbers``, each with the member, a session and a participant."""
    connections.close_all()
    member = User.objects.get(email=MEMBER_EMAIL)
    sessions = []
    for number in numbers:
        slug = slug_of(number)
        community = community_create(slug=slug, name=slug, domain=host_of(slug), actor_id="operator:bench")
        MembershipFactory.create(user=member, community=community, role="principal_investigator")
        session = AuthSession.objects.create(user=member, community=community, amr=["pwd"], auth_time=timezone.now())
        with schema_context(slug):
            study = Study.objects.create(
                title="Scale", protocol_number=f"SC-{number}", irb_approval_number="IRB-1",
                irb_approval_date=timezone.now().date(), status=StudyStatus.ACTIVE,
            )  # fmt: skip
            participant = Participant.objects.create(study=study, **research.phi(number % 100))
            Consent.objects.create(
                participant=participant, scopes=["research_use"], form_version="v1", signed_at=timezone.now()
            )
        sessions.append((slug, str(session.pk)))
    connections.close_all()
    return sessions


def create_communities(count: int) -> tuple[float, dict[str, str]]:
    """Create ``count`` scratch communities in :data:`PROCESSES` processes; seconds taken and each one's session."""
    UserFactory.create(email=MEMBER_EMAIL)
    chunks = [list(range(start, count, PROCESSES)) for start in range(PROCESSES)]
    connections.close_all()
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(PROCESSES) as pool:
        results = pool.map(_create_range, chunks)
    elapsed = time.perf_counter() - started
    return elapsed, {slug: session for part in results for slug, session in part}


def create_the_django_way() -> float:
    """One community whose schema django-tenants makes by running every migration: the cost before."""
    started = time.perf_counter()
    Community(slug=BEFORE_SLUG, schema_name=BEFORE_SLUG, name="before", status_changed_at=timezone.now()).save(
        verbosity=0
    )
    return time.perf_counter() - started


def token_for(slug: str, session: str) -> str:
    """The member's access token in community ``slug``."""
    member = User.objects.get(email=MEMBER_EMAIL)
    return issue_access_token(
        subject=str(member.pk), community=slug, roles=["principal_investigator"], amr=["pwd"],
        auth_time=int(time.time()) - 5, session_id=session,
    )  # fmt: skip


# --- migrate, as the operators run it ---------------------------------------------------


@contextlib.contextmanager
def migrate_settings(*, probe_app: bool) -> Iterator[dict[str, str]]:
    """The environment of a ``manage.py migrate`` on the test database (with the scratch app when asked)."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as directory:
        root = Path(directory)
        apps = ""
        if probe_app:
            migrations = root / PROBE_APP / "migrations"
            migrations.mkdir(parents=True)
            (root / PROBE_APP / "__init__.py").write_text("")
            (migrations / "__init__.py").write_text("")
            (migrations / "0001_initial.py").write_text(
                textwrap.dedent(f"""\
                    from django.db import migrations


                    class Migration(migrations.Migration):
                        operations = [
                            migrations.RunSQL(
                                "CREATE TABLE {PROBE_TABLE} (id bigserial PRIMARY KEY, note text NOT NULL)",
                                "DROP TABLE {PROBE_TABLE}",
                            )
                        ]
                    """)
            )
            apps = f"INSTALLED_APPS = [*INSTALLED_APPS, {PROBE_APP!r}]\nTENANT_APPS = [*TENANT_APPS, {PROBE_APP!r}]\n"
        (root / "bench_scale_settings.py").write_text(
            "from config.settings.test import *  # noqa: F403\n"
            f"DATABASES['default']['NAME'] = {connection.settings_dict['NAME']!r}  # noqa: F405\n" + apps
        )
        yield {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench_scale_settings",
            "PYTHONPATH": os.pathsep.join([directory, str(Path(__file__).resolve().parents[1])]),
        }


def migrate(*, probe_app: bool) -> tuple[float, str]:
    """``manage.py migrate --noinput`` in a process of its own: wall seconds and its last lines."""
    with migrate_settings(probe_app=probe_app) as environment:
        started = time.perf_counter()
        done = subprocess.run(  # nosec B603
            [sys.executable, "manage.py", "migrate", "--noinput"],
            env=environment, capture_output=True, text=True, check=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"migrate exited with {done.returncode}: {done.stderr[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith(("communities:", "migrated "))]
    return elapsed, "; ".join(lines)


def probe_table_count() -> int:
    """How many schemas hold the scratch migration's table."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_tables WHERE tablename = %s", [PROBE_TABLE])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def undo_probe_migration() -> None:
    """Remove the scratch migration's table and its record from every schema (the app exists no more)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name IN ('django_migrations', %s)",
            [PROBE_TABLE],
        )
        schemas = sorted({str(row[0]) for row in cursor.fetchall()})
        for schema in schemas:
            quoted = connection.ops.quote_name(schema)
            cursor.execute(f"DROP TABLE IF EXISTS {quoted}.{PROBE_TABLE}")
            cursor.execute(
                f"DELETE FROM {quoted}.django_migrations WHERE app = %s",  # noqa: S608  # names from the catalog
                [PROBE_APP],
            )


def chain() -> None:
    """Chain the staged events (a worker's job), and say again that a chain task is queued.

    No worker runs here: without the flag a request would try to enqueue one
    (see :func:`bench.research.run`), and a chaining clears it.
    """
    research.chain_staged()
    get_redis().set(queued_flag(research.SLUG), "1", ex=3600)


# --- latency and memory -----------------------------------------------------------------


@dataclass
class Latency:
    """p50 and p99 (milliseconds) of a run of requests."""

    samples: list[float]

    @property
    def p50(self) -> float:
        """The median."""
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        """The 99th percentile."""
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def page_latency(token: str, seconds: float) -> Latency:
    """The secured page, one request after another for ``seconds`` after a warm-up; the audit chained aside."""
    page = research.Contender("secured", research.secured_request(token))
    for _ in range(20):
        page.once()
    page.samples.clear()
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        page.once()
        if len(page.samples) % 25 == 0:
            chain()
    chain()
    return Latency(page.samples)


def rss_mib() -> float:
    """This process's resident memory in MiB (Linux ``/proc``), after a collection."""
    gc.collect()
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory_by_communities(sessions: dict[str, str]) -> list[tuple[int, float, int]]:
    """(communities served, RSS MiB, data keys cached) as the page is served in 1, 100 and every community."""
    slugs = sorted(sessions)
    points, served = [], 0
    for upto in sorted({1, min(100, len(slugs)), len(slugs)}):
        for slug in slugs[served:upto]:
            get = research.served(
                research.wsgi_get(
                    WSGIHandler(), HTTP_HOST=host_of(slug),
                    HTTP_AUTHORIZATION=f"Bearer {token_for(slug, sessions[slug])}",
                )
            )  # fmt: skip
            get()
        served = upto
        points.append((upto, rss_mib(), len(getattr(data_key_cache, "_entries", {}))))
    return points


# --- load -------------------------------------------------------------------------------


def audit_under_load(wrk: str, port: int, token: str) -> dict[str, float]:
    """Wrk on the page for :data:`LOAD_SECONDS` while this process chains every 50 ms; rates and chain lag."""
    environment = {**os.environ, "BENCH_LOAD_HOST": research.HOST, "BENCH_LOAD_AUTHORIZATION": f"Bearer {token}"}
    command = [
        wrk, "-t", str(load.THREADS), "-c", str(load.CONNECTIONS), "-d", f"{LOAD_SECONDS}s", "--timeout", "10s",
        "-s", str(load.LUA), f"http://127.0.0.1:{port}{research.SECURED_URL}",
    ]  # fmt: skip
    load.load(wrk, port, load.Target("warm-up", research.SECURED_URL, f"Bearer {token}"), 3)
    chain()
    started = timezone.now()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, text=True)  # noqa: S603 # nosec B603
    while process.poll() is None:
        chain()
        time.sleep(0.05)
    chain()
    output = process.stdout.read() if process.stdout else ""
    line = next(line for line in output.splitlines() if line.startswith("BENCH_LOAD_JSON "))
    measured = dict(json.loads(line.removeprefix("BENCH_LOAD_JSON ")))
    with schema_context(research.SLUG), connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), extract(epoch FROM max(chained_at) - min(staged_at)),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM chained_at - staged_at)),"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM chained_at - staged_at))"
            " FROM audit_auditevent WHERE staged_at >= %s",
            [started],
        )
        count, span, lag50, lag99 = cursor.fetchone() or (0, 0, 0, 0)
    measured.update(
        appended=float(count or 0), appends_per_second=float(count or 0) / LOAD_SECONDS,
        lag_p50_ms=float(lag50 or 0) * 1000, lag_p99_ms=float(lag99 or 0) * 1000, span=float(span or 0),
    )  # fmt: skip
    return measured


def serve_and_load(token: str) -> dict[str, float]:
    """Gunicorn as committed, serving the page; one wrk run with chaining alongside."""
    wrk = load.ensure_wrk()
    port = load.free_port()
    server = load.start_gunicorn(port)
    try:
        load.wait_ready(port, server)
        return audit_under_load(wrk, port, token)
    finally:
        load.stop(server)


# --- main -------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    """``meets`` or ``misses``."""
    return "meets" if ok else "misses"


def line(label: str, figure: str) -> None:
    """One figure, in the other modules' layout."""
    print(f"{label:<60} {figure}")


def run() -> None:
    """Everything, in order; figures printed as they come."""
    token = research.seed()
    get_redis().set(queued_flag(research.SLUG), "1", ex=3600)
    print(f"scale: {COUNT} communities, {PROCESSES} creating processes; {os.cpu_count()} CPUs")
    with override_settings(**research.LIMITS_OUT_OF_REACH):
        one = page_latency(token, LATENCY_SECONDS)
    line("page with 1 community (+ the test database's own)", f"p50 {one.p50:7.2f} ms  p99 {one.p99:7.2f} ms")
    before = create_the_django_way()
    with stolen() as steal:
        created, sessions = create_communities(COUNT)
    line("create a community: every migration run by Django (before)", f"{before * 1000:7.0f} ms")
    line(
        f"create {COUNT} communities ({PROCESSES} processes; {steal})",
        f"{created:7.1f} s  ({created / COUNT * PROCESSES * 1000:.0f} ms each per process)",
    )
    nothing, said = migrate(probe_app=False)
    line("migrate, nothing pending (manage.py, process start included)", f"{nothing:7.1f} s  ({said})")
    line("", f"{verdict(nothing < MIGRATE_TARGET_SECONDS)} the {MIGRATE_TARGET_SECONDS:.0f} s target")
    try:
        one_more, said = migrate(probe_app=True)
        tables = probe_table_count()
        line("migrate, one new migration (parallel, MIGRATE_PARALLEL=2)", f"{one_more:7.1f} s  ({said})")
        line("  schemas holding the new migration's table", f"{tables}")
    finally:
        undo_probe_migration()
    with override_settings(**research.LIMITS_OUT_OF_REACH):
        many = page_latency(token, LATENCY_SECONDS)
        line(f"page with {COUNT} communities", f"p50 {many.p50:7.2f} ms  p99 {many.p99:7.2f} ms")
        memory = memory_by_communities(sessions)
    print(f"  (data key cache bound: DATA_KEY_CACHE_MAX_ENTRIES = {settings.DATA_KEY_CACHE_MAX_ENTRIES})")
    for served, mib, keys in memory:
        line(f"  RSS of this worker after serving {served} communities", f"{mib:7.1f} MiB  ({keys} data keys cached)")
    if len(memory) > 1:
        (low, low_mib, _), (high, high_mib, _) = memory[0], memory[-1]
        line("  memory per community served", f"{(high_mib - low_mib) * 1024 / max(1, high - low):7.1f} KiB")
    loaded = serve_and_load(token)
    line(
        f"gunicorn + wrk {load.CONNECTIONS} conn, {COUNT} communities, {LOAD_SECONDS} s",
        f"{loaded['requests_per_second']:7.1f} req/s  p50 {loaded['p50_ms']:.1f} ms  p99 {loaded['p99_ms']:.1f} ms"
        f"  errors {int(loaded['errors'])}",
    )
    line(
        "  audit appends (staged and chained)",
        f"{loaded['appends_per_second']:7.1f} /s  chain lag p50 {loaded['lag_p50_ms']:.0f} ms"
        f"  p99 {loaded['lag_p99_ms']:.0f} ms",
    )
    dropped = drop_scratch()
    line(f"drop {COUNT + 1} communities", f"{dropped:7.1f} s")
    token = research.seed()
    with override_settings(**research.LIMITS_OUT_OF_REACH):
        again = page_latency(token, LATENCY_SECONDS)
    line("page with 1 community again (after the drop)", f"p50 {again.p50:7.2f} ms  p99 {again.p99:7.2f} ms")
    baseline = statistics.mean([one.p50, again.p50])
    ratio = many.p50 / baseline
    line(
        f"p50 with {COUNT} / p50 with 1 (mean of before and after)",
        f"{ratio:7.1%}  ({verdict(ratio <= LATENCY_TARGET)} the within-10% target; p99 {many.p99 / one.p99:.0%})",
    )


def main() -> None:
    """Set up the test database, run, drop every scratch community whatever happens."""
    research.prepare_test_database()
    drop_scratch()
    try:
        run()
    finally:
        get_redis().delete(queued_flag(research.SLUG))
        drop_scratch()


if __name__ == "__main__":
    main()
