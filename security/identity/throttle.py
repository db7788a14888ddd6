"""Failed-login throttling per account and per client address, in Redis.

Each failure increments two counters (one per account, one per address) that
expire with the failure window. Reaching the limit locks that account or
address for ``LOGIN_LOCKOUT_SECONDS``, during which even the right password
gets 429 with ``Retry-After``. Accounts are keyed by a hash of the email, so
no address book ends up in Redis. Redis down: logins fail closed (503).
"""

from __future__ import annotations

import hashlib

import redis
from django.conf import settings

from gateway.errors import ServiceUnavailable, TooManyRequests
from gateway.redis_client import get_redis
from security.errors import IdentityErrorCode


def _keys(email: str, ip: str) -> tuple[str, str]:
    account = hashlib.sha256(email.encode("utf-8")).hexdigest()
    return f"login:fail:account:{account}", f"login:fail:ip:{ip}"


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Sign-in is unavailable right now; try again shortly.", code=IdentityErrorCode.LOGIN_UNAVAILABLE
    )


def ensure_login_allowed(*, email: str, ip: str) -> None:
    """Raise 429 if the account or the address is locked out."""
    account_key, ip_key = _keys(email, ip)
    try:
        pipe = get_redis().pipeline(transaction=False)
        for key in (account_key, ip_key):
            pipe.get(key)
            pipe.ttl(key)
        account_count, account_ttl, ip_count, ip_ttl = pipe.execute()
    except redis.RedisError as error:
        raise _unavailable() from error
    waits = []
    if int(account_count or 0) >= settings.LOGIN_MAX_FAILURES_PER_ACCOUNT:
        waits.append(int(account_ttl))
    if int(ip_count or 0) >= settings.LOGIN_MAX_FAILURES_PER_IP:
        waits.append(int(ip_ttl))
    if waits:
        retry_after = max(1, *waits)
        raise TooManyRequests(
            f"Too many failed sign-ins; try again in {retry_after} seconds.",
            code=IdentityErrorCode.LOGIN_LOCKED,
            headers={"Retry-After": str(retry_after)},
        )


def record_login_failure(*, email: str, ip: str) -> None:
    """Count a failure; the failure that reaches a limit starts that lockout."""
    account_key, ip_key = _keys(email, ip)
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    try:
        pipe = get_redis().pipeline(transaction=True)
        for key in (account_key, ip_key):
            pipe.incr(key)
            pipe.expire(key, window, nx=True)
        account_count, _, ip_count, _ = pipe.execute()
        lock = get_redis().pipeline(transaction=True)
        if account_count == settings.LOGIN_MAX_FAILURES_PER_ACCOUNT:
            lock.expire(account_key, settings.LOGIN_LOCKOUT_SECONDS)
        if ip_count == settings.LOGIN_MAX_FAILURES_PER_IP:
            lock.expire(ip_key, settings.LOGIN_LOCKOUT_SECONDS)
        lock.execute()
    except redis.RedisError as error:
        raise _unavailable() from error


def record_login_success(*, email: str) -> None:
    """A successful sign-in clears the account's failures (not the address's)."""
    account_key, _ = _keys(email, "")
    try:
        get_redis().delete(account_key)
    except redis.RedisError as error:
        raise _unavailable() from error
