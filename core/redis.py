"""One Redis client per URL, with short timeouts so that callers fail closed quickly."""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings
from redis.commands.core import Script


@lru_cache(maxsize=4)
def _client_for(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True)


def get_redis() -> redis.Redis:
    """Return the shared client for ``settings.REDIS_URL`` (thread-safe connection pool)."""
    return _client_for(settings.REDIS_URL, settings.REDIS_SOCKET_TIMEOUT)


@lru_cache(maxsize=32)
def _script_on(client: redis.Redis, source: str) -> Script:
    return client.register_script(source)


def redis_script(source: str) -> Script:
    """The Lua script ``source`` on the shared client, registered once per client (its SHA-1 computed once).

    Calling it sends ``EVALSHA`` and, on ``NOSCRIPT`` (a restarted or flushed server), loads it again.
    """
    return _script_on(get_redis(), source)
