"""gunicorn's one configuration (``make run``, the image, blue/green): gevent workers, bounded, logs on standard output.

Workers. Four gevent workers by default (``GUNICORN_WORKERS``), bound to
``GUNICORN_BIND`` (``--bind`` on the command line wins). Each worker serves one
greenlet per client connection, at most ``worker_connections`` at once.

Database connections. Django keeps its connections in a ``threading.local``,
which gevent's patching makes greenlet-local: every in-flight greenlet holds a
PostgreSQL connection of its own. ``raw_env`` gives each worker a connection
pool of ``worker_connections`` (``DATABASE_POOL_MAX_SIZE``, Django's psycopg
pool) and ``DATABASE_CONN_MAX_AGE=0``: a request takes a connection from the
pool and gives it back, still open, when it finishes (a connection kept by the
greenlet instead would die with its client connection, and one opened per
request costs the database a new backend each time). The number of
connections a server opens is then at most ``workers x
worker_connections``, and that product is held within
``GUNICORN_DB_CONNECTION_BUDGET`` (default 80, under PostgreSQL's default
``max_connections`` of 100, leaving room for Celery, migrations and an
operator): ``worker_connections`` defaults to the budget divided by the
workers, and a configuration whose product exceeds the budget refuses to load.

No preload. The application is imported in each worker after gunicorn's
gevent worker has monkey-patched the standard library (``preload_app`` off):
imported in the arbiter first, psycopg, redis-py, Django's connection handler
and the locks of the key cache and policy engine would be built on the
unpatched ``socket``/``threading`` and block a whole worker, or share state
across the fork.

Memory. gunicorn has no per-worker memory limit; :func:`post_request` reads
the worker's resident set (``/proc/self/statm``) after each request, and above
``GUNICORN_WORKER_MAX_RSS_MB`` (default 512; 0 turns it off) it tells the
worker to stop accepting and exit once its in-flight requests are done; the
arbiter starts a fresh one. ``max_requests`` with ``max_requests_jitter``
recycles workers anyway, so they do not all restart at once.

Shutdown. SIGTERM to the arbiter is a graceful stop: workers stop accepting,
finish in-flight requests for up to ``graceful_timeout`` seconds, then exit.

The access log never holds a query string. gunicorn's default format logs
``%(r)s``, the request line built from ``RAW_URI``, so a filter in the URL
(once ``?mrn=``) would be written in clear; here the line names the path alone
(``%(U)s``, ``PATH_INFO``), and no referer (``%(f)s``, another URL) or basic-auth
user either. It keeps what an operator needs: the client address, time, method,
path, protocol, status, bytes sent, duration in milliseconds and the request id
the service answered with (``X-Request-ID``, which finds the audit event).

A header whose name holds an underscore is dropped (``header_map``, pinned to
gunicorn's default): Kong passes ``X_Request_ID`` or ``X_Gateway_Host`` on as
the client sent them (nginx's ``underscores_in_headers on``), and mapped, each
would become the ``HTTP_X_...`` of the header Kong set itself.

Limits and refusals. The request line, the number of header fields and the size
of each are bounded by :mod:`core.limits` (``REQUEST_LINE_MAX_BYTES``,
``HEADER_FIELDS_MAX``, ``HEADER_FIELD_MAX_BYTES``), the names the API's schema
and docs give them. gunicorn's own refusals of those, and of anything else it
cannot parse, are problem documents without the request's bytes:
``worker_class`` is gunicorn's gevent worker with that one change
(:mod:`config.gunicorn_worker`).

This file is read by gunicorn before any patching and must not import Django:
the standard library and :mod:`core.limits` only (which imports nothing).
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from typing import Any

from core.limits import HEADER_FIELD_MAX_BYTES, HEADER_FIELDS_MAX, REQUEST_LINE_MAX_BYTES

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise RuntimeError(f"{name} must be an integer, got {raw!r}") from error


def connection_bound(workers: int, budget: int, requested: int) -> int:
    """The greenlets per worker: ``requested`` (0: the budget's share); refused when the product exceeds ``budget``."""
    if workers < 1:
        raise RuntimeError("GUNICORN_WORKERS must be at least 1")
    per_worker = requested or budget // workers
    if per_worker < 1 or workers * per_worker > budget:
        raise RuntimeError(
            f"{workers} workers x {per_worker} connections exceeds GUNICORN_DB_CONNECTION_BUDGET={budget}"
        )
    return per_worker


wsgi_app = "config.wsgi:application"
bind = [os.environ.get("GUNICORN_BIND", "").strip() or "127.0.0.1:8000"]
worker_class = "config.gunicorn_worker.ProblemGeventWorker"  # gevent's, refusing in problem documents
workers = _env_int("GUNICORN_WORKERS", 4)
DB_CONNECTION_BUDGET = _env_int("GUNICORN_DB_CONNECTION_BUDGET", 80)
worker_connections = connection_bound(workers, DB_CONNECTION_BUDGET, _env_int("GUNICORN_WORKER_CONNECTIONS", 0))
preload_app = False
# No control socket (gunicorn 25.1+, for gunicornc): nothing here uses it, its default path is shared by every
# gunicorn of one user ($HOME/.gunicorn/gunicorn.ctl: each unlinks the others' on start and stop, as the blue and
# green colours would), and the image's HOME is not writable on a read-only root filesystem.
control_socket_disable = True
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 5000)
max_requests_jitter = max_requests // 10
WORKER_MAX_RSS_MB = _env_int("GUNICORN_WORKER_MAX_RSS_MB", 512)
# One pool per worker, as large as its greenlets: no request waits for a connection, none is opened per request.
raw_env = ["DATABASE_CONN_MAX_AGE=0", f"DATABASE_POOL_MAX_SIZE={worker_connections}"]
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'
header_map = "drop"
limit_request_line = REQUEST_LINE_MAX_BYTES
limit_request_fields = HEADER_FIELDS_MAX
limit_request_field_size = HEADER_FIELD_MAX_BYTES


def resident_mb() -> float:
    """This process's resident set in MiB (Linux ``/proc/self/statm``; 0 where there is none)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * PAGE_BYTES / (1024 * 1024)


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    """Recycle the worker gracefully once its resident set passes ``GUNICORN_WORKER_MAX_RSS_MB``."""
    if WORKER_MAX_RSS_MB <= 0 or not worker.alive:
        return
    rss = resident_mb()
    if rss > WORKER_MAX_RSS_MB:
        worker.log.warning(
            "worker %s: resident %.0f MiB above GUNICORN_WORKER_MAX_RSS_MB=%s, recycling",
            worker.pid,
            rss,
            WORKER_MAX_RSS_MB,
        )
        worker.alive = False


_made_here: list[str] = []  # the multiprocess directory on_starting made itself, removed again on exit


def on_starting(server: Any) -> None:
    """Give the workers one fresh Prometheus multiprocess directory, so ``/metrics`` adds up every worker.

    Each worker writes its figures to files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape, whichever worker
    answers it, reads them all (gateway/metrics.py). The arbiter sets the directory before any worker forks
    (workers import prometheus_client after the fork: no preload), and empties it of an earlier run's files:
    stale counters would be added to this run's. Without the variable a private temporary directory is made.
    One directory per arbiter: two colours of a blue/green deployment must not share one.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if not directory:
        directory = tempfile.mkdtemp(prefix="cgw-metrics-")
        _made_here.append(directory)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    for stale in glob.glob(os.path.join(directory, "*.db")):
        os.remove(stale)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


def on_exit(server: Any) -> None:
    """The arbiter stops: remove the multiprocess directory it made (an operator's own is left in place)."""
    for directory in _made_here:
        shutil.rmtree(directory, ignore_errors=True)


def child_exit(server: Any, worker: Any) -> None:
    """A worker has exited: its live gauges leave the sums (prometheus_client's multiprocess mode)."""
    from prometheus_client import multiprocess  # noqa: PLC0415  # in the arbiter only, after on_starting

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
