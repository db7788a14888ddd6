"""One Redis client per URL, with short timeouts so that callers fail closed quickly.

With ``REDIS_CLUSTER`` the client is a cluster client (``redis.cluster.RedisCluster``), which finds the nodes
from the URL's node, sends each command to the node of its keys' slot and splits a pipeline that is not a
transaction by node. Every multi-key unit the code sends (a transaction, a script) keeps its keys in one slot
(docs/operations/sharding.md, "Redis Cluster").
"""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings
from redis.cluster import RedisCluster
from redis.commands.core import Script


@lru_cache(maxsize=4)
def _client_for(url: str, timeout: float, cluster: bool) -> redis.Redis:
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "decode_responses": True}
    if cluster:
        # Not a redis.Redis subclass, but it answers every command the code sends
        # (tests/integration/test_on_a_redis_cluster.py runs them on a cluster).
        return RedisCluster.from_url(url, **options)  # type: ignore[return-value]
    return redis.Redis.from_url(url, **options)


def get_redis() -> redis.Redis:
    """Return the shared client for ``settings.REDIS_URL`` (thread-safe connection pool)."""
    return _client_for(settings.REDIS_URL, settings.REDIS_SOCKET_TIMEOUT, settings.REDIS_CLUSTER)


@lru_cache(maxsize=32)
def _script_on(client: redis.Redis, source: str) -> Script:
    return client.register_script(source)


def redis_script(source: str) -> Script:
    """The Lua script ``source`` on the shared client, registered once per client (its SHA-1 computed once).

    Calling it sends ``EVALSHA`` and, on ``NOSCRIPT`` (a restarted or flushed server), loads it again.
    """
    return _script_on(get_redis(), source)
