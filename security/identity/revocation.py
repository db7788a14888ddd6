"""Revocation of access tokens before they expire: Redis first, the database when Redis has no answer.

Logging out revokes the token's id (``jti``) and its session (``sid``, the
refresh-token family); reuse of a rotated refresh token, or a session past its
idle or absolute lifetime, revokes the session. Redis keeps those marks only
as long as a token they name could live, and it may lose them (a restart
without persistence, a fail-over, a flush). So the absence of a mark proves
nothing: when Redis holds no answer for a session, ``AuthSession.revoked_at``
in the database decides, and the answer is kept in Redis. A "revoked" answer
is kept as long as a token of the session could live; a "live" one only
``REVOCATION_LIVE_CACHE_SECONDS``, which bounds how long a revocation made in
the database alone (an operator's ``UPDATE``) goes unseen. A revocation mark
always wins over a "live" one, so a logout racing a lookup cannot be undone.

When Redis cannot answer, authentication fails closed (503), never open.
"""

from __future__ import annotations

import time

import redis
from django.conf import settings

from core.errors import ServiceUnavailable
from core.redis import get_redis
from security.errors import IdentityErrorCode
from security.selectors import session_is_live

_REVOKED_JTI_KEY = "revoked:jti:{}"
_REVOKED_SID_KEY = "revoked:sid:{}"
_LIVE_SID_KEY = "live:sid:{}"


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Token revocation cannot be checked right now; try again shortly.",
        code=IdentityErrorCode.REVOCATION_UNAVAILABLE,
    )


def _session_ttl() -> int:
    """How long any access token of a session issued now could still be accepted."""
    return int(settings.ACCESS_TOKEN_TTL_SECONDS) + int(settings.JWT_LEEWAY_SECONDS)


def revoke_token(token_id: str, *, expires_at: int) -> None:
    """Revoke one access token until it would have expired anyway."""
    ttl = max(1, expires_at - int(time.time()) + int(settings.JWT_LEEWAY_SECONDS))
    try:
        get_redis().set(_REVOKED_JTI_KEY.format(token_id), "1", ex=ttl)
    except redis.RedisError as error:
        raise _unavailable() from error


def revoke_session(session_id: str) -> None:
    """Revoke every access token of a session (all were issued within one lifetime).

    The mark and the dropped "live" answer need no transaction (a Redis Cluster could not run one over the two
    keys' slots): a revocation mark wins over a "live" one whatever order a reader sees them in.
    """
    try:
        with get_redis().pipeline(transaction=False) as pipeline:
            pipeline.set(_REVOKED_SID_KEY.format(session_id), "1", ex=_session_ttl())
            pipeline.delete(_LIVE_SID_KEY.format(session_id))
            pipeline.execute()
    except redis.RedisError as error:
        raise _unavailable() from error


def is_revoked(*, token_id: str, session_id: str) -> bool:
    """Whether the token or its session was revoked: one Redis round trip, and a query when Redis has no answer.

    The three keys are read by a pipeline of single-key reads, not one ``MGET``: a Redis Cluster serves a
    pipeline whatever slots its keys are in (the client splits it by node), an ``MGET`` only within one slot.
    """
    client = get_redis()
    keys = [_REVOKED_JTI_KEY.format(token_id), _REVOKED_SID_KEY.format(session_id), _LIVE_SID_KEY.format(session_id)]
    try:
        with client.pipeline(transaction=False) as pipeline:
            for key in keys:
                pipeline.get(key)
            token_revoked, session_revoked, session_live = pipeline.execute()
    except redis.RedisError as error:
        raise _unavailable() from error
    if token_revoked is not None or session_revoked is not None:
        return True
    if session_live is not None:
        return False
    live = session_is_live(session_id=session_id)
    try:
        if live:
            client.set(keys[2], "1", ex=int(settings.REVOCATION_LIVE_CACHE_SECONDS))
        else:
            client.set(keys[1], "1", ex=_session_ttl())
    except redis.RedisError as error:
        raise _unavailable() from error
    return not live
