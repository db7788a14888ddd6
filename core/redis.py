"""One Redis client per URL, with short timeouts so that callers fail closed quickly."""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=4)
def _client_for(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True)


def get_redis() -> redis.Redis:
    """Return the shared client for ``settings.REDIS_URL`` (thread-safe connection pool)."""
    return _client_for(settings.REDIS_URL, settings.REDIS_SOCKET_TIMEOUT)
