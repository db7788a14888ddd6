"""Refusals made before the policy (suspended community, gateway required, rate limited...) as audit events.

The edge decides what a refusal is (:mod:`gateway.refusals`); this module
records one, and bounds how many it records so that a flood of refusals
cannot become a flood of audit writes:

* **first per client per window**: for one client (address, or IPv6 /64),
  host and refusal code, only the first refusal of each
  ``AUDIT_REFUSAL_WINDOW_SECONDS`` is written; the rest are counted in Redis,
  and the next one written carries the count (``also_refused:<n>``; a count
  nobody carries on is dropped after a day);
* **a ceiling for everyone**: at most ``AUDIT_REFUSAL_MAX_PER_WINDOW`` refusal
  events per window across all clients (a flood from many addresses), beyond
  which refusals are only counted.

The bound is one Redis round trip. When Redis cannot answer, a small
in-process table applies the same rule for this process alone.

A refusal stands whatever happens here: when the event cannot be written (the
database is down, say) the failure is logged and the client still gets the
refusal, never a 500.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django_tenants.utils import get_public_schema_name, schema_context

from core.redis import get_redis
from security.audit.staging import audit_append

logger = logging.getLogger(__name__)
_RECORDED = "_audit_event_recorded"
COUNT_TTL_SECONDS = 86_400
_LOCAL_LIMIT = 10_000
# KEYS: the client's mark for this window, the client's count of unrecorded refusals, everyone's total this window.
# ARGV: window seconds, count TTL, ceiling. Returns the count the new event carries, or -1: count it, do not write.
_BOUND = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  local total = redis.call('INCR', KEYS[3])
  if total == 1 then redis.call('EXPIRE', KEYS[3], ARGV[1]) end
  if total <= tonumber(ARGV[3]) then
    local carried = tonumber(redis.call('GET', KEYS[2]) or '0')
    redis.call('DEL', KEYS[2])
    return carried
  end
end
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return -1
"""


def mark_recorded(request: HttpRequest) -> None:
    """Note that ``request`` has its audit event already (the request middleware wrote it)."""
    setattr(request, _RECORDED, True)


def is_recorded(request: HttpRequest) -> bool:
    """Whether ``request`` already has its audit event."""
    return bool(getattr(request, _RECORDED, False))


@dataclass
class _LocalBound:
    """The bound of one process, for when Redis cannot answer."""

    lock: threading.Lock
    marks: dict[str, float]
    counts: dict[str, int]
    window_start: float = 0.0
    total: int = 0

    def admit(self, client_key: str, now: float) -> int:
        window = settings.AUDIT_REFUSAL_WINDOW_SECONDS
        with self.lock:
            if now - self.window_start >= window:
                self.window_start, self.total = now, 0
                self.marks = {key: at for key, at in self.marks.items() if now - at < window}
            seen = self.marks.get(client_key)
            if (seen is None or now - seen >= window) and len(self.marks) < _LOCAL_LIMIT:
                self.marks[client_key] = now
                self.total += 1
                if self.total <= settings.AUDIT_REFUSAL_MAX_PER_WINDOW:
                    return self.counts.pop(client_key, 0)
            if client_key in self.counts or len(self.counts) < _LOCAL_LIMIT:
                self.counts[client_key] = self.counts.get(client_key, 0) + 1
            return -1


_local = _LocalBound(lock=threading.Lock(), marks={}, counts={})


def refusal_admitted(*, code: str, host: str, client: str) -> int:
    """Whether this refusal is written: the count of earlier unwritten ones it carries, or -1 (counted only)."""
    client_key = f"{code}:{host[:100]}:{client}"
    # One hash tag for all: the script reads a client's keys and everyone's total together (one Redis Cluster slot).
    keys = (f"{{audit:refusal}}:first:{client_key}", f"{{audit:refusal}}:count:{client_key}", "{audit:refusal}:total")
    try:
        answer = get_redis().eval(
            _BOUND,
            3,
            *keys,
            settings.AUDIT_REFUSAL_WINDOW_SECONDS,
            COUNT_TTL_SECONDS,
            settings.AUDIT_REFUSAL_MAX_PER_WINDOW,
        )
        return int(answer)
    except redis.RedisError:
        return _local.admit(client_key, time.monotonic())


def refusal_record(*, schema: str | None, code: str, carried: int, **fields: Any) -> bool:
    """Write one refusal event in ``schema``'s log (the platform's when ``None``), in a transaction of its own.

    Returns whether it was written; a failure is logged, never raised (the refusal stands).
    """
    reasons = [code] + ([f"also_refused:{carried}"] if carried > 0 else [])
    try:
        with schema_context(schema or get_public_schema_name()), transaction.atomic():
            audit_append(action="request.refuse", outcome="deny", reasons=reasons, **fields)
    except Exception as error:  # noqa: BLE001 - whatever failed, the refusal must stand, not become a 500
        logger.error("the refusal %s could not be recorded (%s)", code, type(error).__name__)
        return False
    return True
