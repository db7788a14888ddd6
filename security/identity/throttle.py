"""Throttling by identity: failed sign-ins per account and per client address, and requests per user.

An attempt is *reserved* before the password is checked: each counter
(account and address) is incremented, given its window and read back by one
script, atomically, so parallel requests cannot each get a fresh allowance
(one script per key, so the two keys may live in different Redis Cluster
slots). A reservation past the limit is refused with 429 and ``Retry-After``. The caller then
reports the outcome: a failure that reaches a limit starts that lockout
(``LOGIN_LOCKOUT_SECONDS``); a success clears the account's failures and gives
the address its attempt back; an attempt that only needs a second factor
gives both back.

Counters are keyed by an HMAC of the email and of the address, so Redis holds
neither. Redis down: sign-in fails closed (503).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from django.conf import settings

from core.errors import ServiceUnavailable, TooManyRequests
from core.ratelimit import check, refusal
from core.redis import get_redis, redis_script
from security.errors import IdentityErrorCode
from security.identity.sealing import keyed_hashes

# DECR only a counter that still exists: an expired one must not come back without a TTL.
_GIVE_BACK = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end return 0"
# Count an attempt; a new counter gets the window (ARGV[1]). Returns the count and the seconds the counter has left.
_COUNT = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1], 'NX')
return {count, redis.call('TTL', KEYS[1])}
"""


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Sign-in is unavailable right now; try again shortly.", code=IdentityErrorCode.LOGIN_UNAVAILABLE
    )


def _key(kind: str, value: str) -> str:
    return f"login:attempts:{kind}:{keyed_hashes(value, purpose='login-throttle')[0]}"


@dataclass(frozen=True)
class LoginAttempt:
    """A reserved sign-in attempt; report how it ended with one of its methods."""

    account_key: str
    ip_key: str
    account_count: int
    ip_count: int

    def failed(self) -> None:
        """Keep the attempt counted; the failure that reaches a limit starts its lockout."""
        try:
            pipe = get_redis().pipeline(transaction=False)
            if self.account_count >= settings.LOGIN_MAX_FAILURES_PER_ACCOUNT:
                pipe.expire(self.account_key, settings.LOGIN_LOCKOUT_SECONDS)
            if self.ip_count >= settings.LOGIN_MAX_FAILURES_PER_IP:
                pipe.expire(self.ip_key, settings.LOGIN_LOCKOUT_SECONDS)
            pipe.execute()
        except redis.RedisError as error:
            raise _unavailable() from error

    def succeeded(self) -> None:
        """Clear the account's failures; the address gets this attempt back."""
        try:
            client = get_redis()
            client.delete(self.account_key)
            client.eval(_GIVE_BACK, 1, self.ip_key)
        except redis.RedisError as error:
            raise _unavailable() from error

    def released(self) -> None:
        """Neither success nor failure (a second factor is needed): give the attempt back."""
        try:
            client = get_redis()
            client.eval(_GIVE_BACK, 1, self.account_key)
            client.eval(_GIVE_BACK, 1, self.ip_key)
        except redis.RedisError as error:
            raise _unavailable() from error


def reserve_login_attempt(*, email: str, ip: str) -> LoginAttempt:
    """Count an attempt for the account and the address, or raise 429 when either is locked out."""
    account_key, ip_key = _key("account", email), _key("ip", ip)
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    try:
        count = redis_script(_COUNT)  # one call per key: a cluster client runs no script in a pipeline
        account_count, account_ttl = count(keys=[account_key], args=[window])
        ip_count, ip_ttl = count(keys=[ip_key], args=[window])
    except redis.RedisError as error:
        raise _unavailable() from error
    waits = []
    if account_count > settings.LOGIN_MAX_FAILURES_PER_ACCOUNT:
        waits.append(int(account_ttl))
    if ip_count > settings.LOGIN_MAX_FAILURES_PER_IP:
        waits.append(int(ip_ttl))
    if waits:
        retry_after = max(1, *waits)
        raise TooManyRequests(
            f"Too many failed sign-ins; try again in {retry_after} seconds.",
            code=IdentityErrorCode.LOGIN_LOCKED,
            headers={"Retry-After": str(retry_after)},
        )
    return LoginAttempt(account_key=account_key, ip_key=ip_key, account_count=account_count, ip_count=ip_count)


def check_user(user_id: object) -> None:
    """Count a request against its user (after the token is verified, before the policy is asked).

    ``RATE_LIMIT_PER_USER`` per hour with bursts up to ``RATE_LIMIT_USER_BURST``.

    Raises:
        TooManyRequests: past the limit (429 with ``Retry-After`` and the ``RateLimit-*`` headers).
        ServiceUnavailable: Redis cannot count (503).
    """
    verdict = check(
        f"user:{user_id}", per=settings.RATE_LIMIT_PER_USER, period_seconds=3600, burst=settings.RATE_LIMIT_USER_BURST
    )
    if not verdict.allowed:
        raise refusal(verdict)
