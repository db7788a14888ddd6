"""CPU time per page, secured path against the bare view, in process: the figure the 80% target hangs on.

Under the 32-connection load both paths are CPU-bound, so their throughput
ratio is about CPU(bare) / CPU(secured). Wall-clock figures on a machine shared
with other runs are noise; this measures ``time.process_time()`` around each
request (the same WSGI handlers and scratch community as :mod:`bench.research`),
in alternating rounds, and reports the medians, the secured path's own extra
CPU, the ratio, and the statements and Redis commands one page sends (the
database and Redis servers' CPU is outside this process: count them too). The
secured page is measured twice: as served (the policy engine's decision memo
answers a repeated input) and with the memo off, every decision evaluated.

``python -m bench.cpu`` (``BENCH_CPU_REQUESTS`` per round, ``BENCH_CPU_ROUNDS`` rounds).
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any
from unittest import mock

import redis.connection
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from bench import research  # django.setup() with the test settings
from core.redis import get_redis
from policy.engine import get_engine
from security.audit.sequencer import queued_flag

REQUESTS = int(os.environ.get("BENCH_CPU_REQUESTS", "100"))
ROUNDS = int(os.environ.get("BENCH_CPU_ROUNDS", "3"))
Context = Callable[[], AbstractContextManager[Any]]


def cpu_ms(request: Callable[[], bytes], context: Context, requests: int) -> float:
    """Mean CPU milliseconds of this process per request; staged audit events chained outside the timing."""
    spent = 0.0
    for number in range(requests):
        with context():
            started = time.process_time()
            request()
            spent += time.process_time() - started
        if number % 25 == 24:
            research.chain_staged()
    research.chain_staged()
    return spent / requests * 1000


@contextmanager
def redis_commands() -> Iterator[list[int]]:
    """Count the packed sends to Redis (one per command or pipeline: one round trip each)."""
    sent: list[int] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self: redis.connection.AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent.append(1)
        original(self, command, check_health)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped

    with mock.patch.object(redis.connection.AbstractConnection, "send_packed_command", counting):
        yield sent


def round_trips(request: Callable[[], bytes], context: Context) -> tuple[int, int]:
    """Statements and Redis round trips of one page."""
    with context(), CaptureQueriesContext(connection) as statements, redis_commands() as sent:
        request()
    research.chain_staged()
    return len(statements), len(sent)


def run(token: str) -> None:
    """Warm both paths up, then alternate rounds of each; print the medians, the ratio and the round trips."""
    # Imported here: django_tenants reads the settings on import, and bench.research sets Django up.
    from django_tenants.utils import schema_context  # noqa: PLC0415

    get_redis().set(queued_flag(research.SLUG), "1", ex=3600)  # no worker: see bench.research.run
    secured, bare = research.secured_request(token), research.bare_request()
    research.check_pages(secured, bare)
    in_schema: Context = functools.partial(schema_context, research.SLUG)
    paths: dict[str, tuple[Callable[[], bytes], Context]] = {
        "bare": (bare, in_schema),
        "secured": (secured, nullcontext),
        # Every decision evaluated: what a caller pays whose inputs never repeat (policy.md, the memo).
        "no memo": (secured, functools.partial(mock.patch.object, get_engine(), "_memo", None)),
    }
    measured: dict[str, list[float]] = {label: [] for label in paths}
    for request, context in paths.values():  # warm-up
        cpu_ms(request, context, 20)
    for number in range(ROUNDS):
        for label in paths if number % 2 == 0 else reversed(paths):
            request, context = paths[label]
            measured[label].append(cpu_ms(request, context, REQUESTS))
    bare_ms, secured_ms = (statistics.median(measured[label]) for label in ("bare", "secured"))
    for label, (request, context) in paths.items():
        statements, trips = round_trips(request, context)
        rounds = ", ".join(f"{value:.2f}" for value in measured[label])
        print(
            f"{label:<8} CPU {statistics.median(measured[label]):6.2f} ms/page (rounds {rounds})  "
            f"statements {statements}  Redis round trips {trips}"
        )
    for label, spent in (("secured", secured_ms), ("no memo", statistics.median(measured["no memo"]))):
        extra = spent - bare_ms
        print(
            f"{label:<8} path's own CPU {extra:.2f} ms/page = {extra / bare_ms:.0%} of the bare page's "
            f"(80% of the bare throughput needs at most 25%); CPU ratio bare/{label} {bare_ms / spent:.1%}"
        )


def main() -> None:
    """Seed the scratch community, measure, drop it."""
    research.prepare_test_database()
    research.drop_community()
    try:
        token = research.seed()
        with override_settings(**research.LIMITS_OUT_OF_REACH):
            run(token)
    finally:
        get_redis().delete(queued_flag(research.SLUG))
        research.drop_community()


if __name__ == "__main__":
    main()
