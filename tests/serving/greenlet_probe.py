"""Run in a process of its own: gevent's ``patch_all`` first (as gunicorn's gevent worker does), then Django.

Each probe runs greenlets that overlap for real and reports what each saw, as
one JSON document on standard output, for ``test_greenlets.py`` to judge.
"""

# ruff: noqa: PLC0415 - the project is imported only after patching and django.setup(), inside each probe
from gevent import monkey  # type: ignore[import-untyped]  # gevent ships no type information

monkey.patch_all()

import json  # noqa: E402 - after the patching, as in a gevent worker
import os  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
from typing import Any  # noqa: E402

import django  # noqa: E402
import gevent  # noqa: E402

SLUGS = ("alpha", "beta")
SLEEP_SQL = "SELECT current_schema(), pg_sleep(0.6) /* greenlet-probe */"


def _overlapping_queries() -> dict[str, Any]:
    from django.db import connection
    from django_tenants.utils import schema_context

    def sleeper(slug: str) -> dict[str, Any]:
        with schema_context(slug), connection.cursor() as cursor:
            cursor.execute(SLEEP_SQL)
            row = cursor.fetchone()
            seen = {
                "slug": slug,
                "schema_in_database": row[0] if row else None,
                "schema_name": getattr(connection, "schema_name", None),
            }
        connection.close()
        return seen

    def watcher() -> int:
        gevent.sleep(0.3)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE state = 'active' AND pid <> pg_backend_pid() AND query LIKE %s",
                ["%pg_sleep(0.6) /* greenlet-probe */%"],
            )
            row = cursor.fetchone()
        connection.close()
        return int(row[0]) if row else 0

    sleepers = [gevent.spawn(sleeper, slug) for slug in SLUGS]
    watching = gevent.spawn(watcher)
    gevent.joinall([*sleepers, watching], raise_error=True)
    return {"sleepers": [g.value for g in sleepers], "active_at_once": watching.value}


def _overlapping_redis() -> dict[str, Any]:
    import redis
    from django.conf import settings

    keys = [f"greenlet-probe:{uuid.uuid4().hex}" for _ in SLUGS]
    # redis-py's pool, as core.redis builds it, with a timeout longer than the blocking pop
    blocking = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)

    def waiter(key: str) -> str | None:
        popped = blocking.blpop([key], timeout=3)
        value = popped[1] if popped else None
        return value.decode() if isinstance(value, bytes) else value

    def pusher() -> int:
        gevent.sleep(0.3)
        waiting = sum(1 for c in blocking.client_list() if c.get("cmd") == "blpop")
        for key in keys:
            blocking.rpush(key, key)
        return waiting

    waiters = [gevent.spawn(waiter, key) for key in keys]
    pushing = gevent.spawn(pusher)
    gevent.joinall([*waiters, pushing], raise_error=True)
    return {"popped": [g.value for g in waiters], "keys": keys, "blocked_at_once": pushing.value}


def _keys_and_schemas() -> dict[str, Any]:
    from cryptography.exceptions import InvalidTag
    from django.db import connection
    from django_tenants.utils import schema_context

    from vault.keys import cache, current_community, read_key, write_key

    def sealer(slug: str, n: int) -> dict[str, Any]:
        with schema_context(slug):
            gevent.sleep(0.001 * (n % 5))
            community = current_community()
            version, cipher = write_key(community)
            nonce = os.urandom(12)
            sealed = cipher.encrypt(nonce, f"{slug}-{n}".encode(), None)
            gevent.sleep(0)
            opened = read_key(current_community(), version).decrypt(nonce, sealed, None).decode()
            other = next(s for s in SLUGS if s != slug)
        with schema_context(other):
            try:
                other_version, _ = write_key(other)
                read_key(other, other_version).decrypt(nonce, sealed, None)
                crossed = True
            except InvalidTag:
                crossed = False
        connection.close()
        return {"slug": slug, "community": community, "opened": opened, "expected": f"{slug}-{n}", "crossed": crossed}

    cache.purge()
    cache.provider_calls = 0
    sealers = [gevent.spawn(sealer, SLUGS[n % 2], n) for n in range(40)]
    gevent.joinall(sealers, raise_error=True)
    return {"results": [g.value for g in sealers], "provider_calls": cache.provider_calls}


def _policy_decisions() -> dict[str, Any]:
    from policy.engine import get_engine
    from tests.policy.test_obligations import document

    engine = get_engine()
    cases = [("principal_investigator", "export.read"), ("researcher", "export.read")] * 30
    sequential = [engine.decide(document(*case)).allow for case in cases]

    def decider(case: tuple[str, str]) -> bool:
        gevent.sleep(0)
        return engine.decide(document(*case)).allow

    deciders = [gevent.spawn(decider, case) for case in cases]
    gevent.joinall(deciders, raise_error=True)
    return {"sequential": sequential, "concurrent": [g.value for g in deciders]}


def main() -> None:
    """Set Django up (after the patching) and print every probe's findings."""
    django.setup()
    findings = {
        "patched": monkey.is_module_patched("socket") and monkey.is_module_patched("threading"),
        "queries": _overlapping_queries(),
        "redis": _overlapping_redis(),
        "keys": _keys_and_schemas(),
        "policy": _policy_decisions(),
    }
    json.dump(findings, sys.stdout)


if __name__ == "__main__":
    main()
