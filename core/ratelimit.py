"""Rate limiting by GCRA (generic cell rate algorithm) in Redis: one atomic round trip per check.

The edge counts every request per client address (:mod:`gateway.ratelimit`);
authentication counts every request per user (:mod:`security.identity.throttle`).
Both count here, on Redis's own clock, and both fail closed: when Redis cannot
answer, :func:`check` raises ``ServiceUnavailable`` instead of letting the
request run unlimited.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis

from core.errors import ErrorCode, ServiceUnavailable, TooManyRequests
from core.redis import redis_script

# KEYS[1]: the bucket. ARGV: emission interval (ms), tolerance (ms). The clock is Redis's own,
# so application hosts with skewed clocks count alike. Returns {allowed (1/0), remaining,
# retry after (ms), reset (ms)}.
_GCRA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local horizon = tolerance + interval
if new_tat - now > horizon then
  return {0, 0, tat - now - tolerance, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, math.ceil(new_tat - now)))
return {1, math.floor((horizon - (new_tat - now)) / interval), 0, new_tat - now}
"""


@dataclass(frozen=True)
class Verdict:
    """One check's outcome and what the client is told about it."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_seconds: int
    reset_seconds: int
    policy: str

    def headers(self) -> dict[str, str]:
        """``RateLimit-*`` headers (IETF httpapi draft), plus ``Retry-After`` when refused."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": self.policy,
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_seconds)
        return headers


def check(bucket: str, *, per: int, period_seconds: int, burst: int) -> Verdict:
    """Count one request against ``bucket``; raise ServiceUnavailable when Redis cannot answer."""
    interval = period_seconds * 1000 / per
    tolerance = interval * (burst - 1)
    try:
        script = redis_script(_GCRA)
        allowed, remaining, retry_ms, reset_ms = script(keys=[f"ratelimit:{bucket}"], args=[interval, tolerance])
    except redis.RedisError as error:
        raise ServiceUnavailable(
            "Requests cannot be counted right now; try again shortly.", code=ErrorCode.RATE_LIMIT_UNAVAILABLE
        ) from error
    return Verdict(
        allowed=bool(allowed),
        limit=per,
        remaining=int(remaining),
        retry_after_seconds=max(1, math.ceil(float(retry_ms) / 1000)),
        reset_seconds=max(0, math.ceil(float(reset_ms) / 1000)),
        policy=f"{per};w={period_seconds};burst={burst}",
    )


def refusal(verdict: Verdict) -> TooManyRequests:
    """The 429 for a refused ``verdict``, carrying its ``RateLimit-*`` and ``Retry-After`` headers."""
    return TooManyRequests(
        f"Too many requests; try again in {verdict.retry_after_seconds} seconds.",
        code=ErrorCode.RATE_LIMITED,
        headers=verdict.headers(),
    )
