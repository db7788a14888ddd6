"""Revocation of access tokens before they expire, in Redis.

Logging out revokes the token's id (``jti``) and its session (``sid``, the
refresh-token family); reuse of a rotated refresh token revokes the session.
Entries live only as long as a token they name could. When Redis cannot
answer, authentication fails closed (503), never open.
"""

from __future__ import annotations

import time

import redis
from django.conf import settings

from core.errors import ServiceUnavailable
from core.redis import get_redis
from security.errors import IdentityErrorCode

_REVOKED_JTI_KEY = "revoked:jti:{}"
_REVOKED_SID_KEY = "revoked:sid:{}"


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Token revocation cannot be checked right now; try again shortly.",
        code=IdentityErrorCode.REVOCATION_UNAVAILABLE,
    )


def revoke_token(token_id: str, *, expires_at: int) -> None:
    """Revoke one access token until it would have expired anyway."""
    ttl = max(1, expires_at - int(time.time()) + int(settings.JWT_LEEWAY_SECONDS))
    try:
        get_redis().set(_REVOKED_JTI_KEY.format(token_id), "1", ex=ttl)
    except redis.RedisError as error:
        raise _unavailable() from error


def revoke_session(session_id: str) -> None:
    """Revoke every access token of a session (all were issued within one lifetime)."""
    ttl = int(settings.ACCESS_TOKEN_TTL_SECONDS) + int(settings.JWT_LEEWAY_SECONDS)
    try:
        get_redis().set(_REVOKED_SID_KEY.format(session_id), "1", ex=ttl)
    except redis.RedisError as error:
        raise _unavailable() from error


def is_revoked(*, token_id: str, session_id: str) -> bool:
    """Whether the token or its session was revoked (one round trip)."""
    try:
        values = get_redis().mget([_REVOKED_JTI_KEY.format(token_id), _REVOKED_SID_KEY.format(session_id)])
    except redis.RedisError as error:
        raise _unavailable() from error
    return any(value is not None for value in values)
