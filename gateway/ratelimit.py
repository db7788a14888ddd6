"""Rate limits in the service itself (Kong's limiter fails open when its Redis is down; this one does not).

A GCRA (generic cell rate algorithm) in one Lua script: one atomic round trip
per check. Per client address: ``RATE_LIMIT_PER_IP`` requests per minute with
bursts up to ``RATE_LIMIT_IP_BURST``, checked by middleware before anything
else. Per user: ``RATE_LIMIT_PER_USER`` per hour with bursts up to
``RATE_LIMIT_USER_BURST``, checked as soon as the token is verified, before the
policy is asked. Redis unreachable: API routes answer 503 rather
than run unlimited; health probes are never limited.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from gateway.client_ip import client_bucket
from gateway.errors import ServiceUnavailable, TooManyRequests
from gateway.problems import application_error_response
from gateway.redis_client import get_redis

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
        script = get_redis().register_script(_GCRA)
        allowed, remaining, retry_ms, reset_ms = script(keys=[f"ratelimit:{bucket}"], args=[interval, tolerance])
    except redis.RedisError as error:
        raise ServiceUnavailable(
            "Requests cannot be counted right now; try again shortly.", code="rate_limit_unavailable"
        ) from error
    return Verdict(
        allowed=bool(allowed),
        limit=per,
        remaining=int(remaining),
        retry_after_seconds=max(1, math.ceil(float(retry_ms) / 1000)),
        reset_seconds=max(0, math.ceil(float(reset_ms) / 1000)),
        policy=f"{per};w={period_seconds};burst={burst}",
    )


def _refusal(verdict: Verdict) -> TooManyRequests:
    return TooManyRequests(
        f"Too many requests; try again in {verdict.retry_after_seconds} seconds.",
        code="rate_limited",
        headers=verdict.headers(),
    )


class ClientRateLimitMiddleware:
    """Per-address limit on every route but the health probes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Count the request; refuse past the limit, or when the count cannot be made on an API route."""
        if request.path.startswith("/health/"):
            return self.get_response(request)
        try:
            verdict = check(
                f"ip:{client_bucket(request)}",
                per=settings.RATE_LIMIT_PER_IP,
                period_seconds=60,
                burst=settings.RATE_LIMIT_IP_BURST,
            )
        except ServiceUnavailable as error:
            if request.path.startswith("/api/"):
                return application_error_response(request, error)
            return self.get_response(request)  # docs, JWKS, admin: nothing protected runs unlimited
        if not verdict.allowed:
            return application_error_response(request, _refusal(verdict))
        response = self.get_response(request)
        for name, value in verdict.headers().items():
            response.headers.setdefault(name, value)
        return response


def check_user(user_id: object) -> dict[str, str]:
    """Count a request against its user (after the token is verified, before the policy is asked).

    Returns the headers to add; raises 429 past the limit (or 503 when Redis cannot count).
    """
    verdict = check(
        f"user:{user_id}", per=settings.RATE_LIMIT_PER_USER, period_seconds=3600, burst=settings.RATE_LIMIT_USER_BURST
    )
    if not verdict.allowed:
        raise _refusal(verdict)
    return verdict.headers()
