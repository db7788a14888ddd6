"""Access tokens: EdDSA-signed JWTs (RFC 9068 ``at+jwt``) bound to one community.

The service verifies every token itself and trusts nothing the edge says about
it. The accepted algorithm is fixed here, not read from the token: ``none``,
HMAC (including HMAC keyed with our public key) and anything else are refused
before a key is chosen. ``jku``, ``x5u`` and ``jwk`` headers are never
consulted; keys come from our own keyring by ``kid`` only. Every failure
raises the same :class:`InvalidToken`, so a caller cannot learn which check failed.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from django.conf import settings

from core.errors import Unauthenticated
from core.lru import BoundedLRU
from security.errors import IdentityErrorCode
from security.identity.signing_keys import ALGORITHM, current_keyring, find_verification_key

ACCESS_JWT_TYPE = "at+jwt"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "nbf", "iat", "jti", "community", "roles", "amr", "auth_time", "sid")


# Tokens that passed every check of jwt.decode, by their SHA-256 and what they were checked against (key,
# audience, issuer): a token seen again skips the signature and the parse, and its lifetime is checked
# anew on every use. Only a token that passed is kept (an attacker cannot fill this with forgeries), a
# key that left the keyring refuses its tokens before this is consulted, revocation is the caller's as
# always. Envoy's jwt_authn keeps verified tokens the same way (its jwt_cache_config).
VERIFIED_TOKENS_KEPT = 2048
_verified: BoundedLRU[tuple[bytes, str, str, str], dict[str, Any]] = BoundedLRU(VERIFIED_TOKENS_KEPT)


class InvalidToken(Unauthenticated):
    """The bearer token was not accepted (deliberately silent about why)."""

    def __init__(self) -> None:
        super().__init__(
            "The access token is missing, invalid, expired or revoked.", code=IdentityErrorCode.INVALID_TOKEN
        )


@dataclass(frozen=True)
class AccessClaims:
    """What a verified access token says about its bearer."""

    subject: str
    community: str
    roles: tuple[str, ...]
    amr: tuple[str, ...]
    auth_time: int
    token_id: str
    session_id: str
    expires_at: int


class StaleAuthentication(Unauthenticated):
    """The token is valid but its sign-in is too old for this operation (RFC 9470 step-up)."""

    def __init__(self, max_age: int) -> None:
        challenge = (
            'Bearer realm="api", error="insufficient_user_authentication", '
            f'error_description="A more recent sign-in is required", max_age={max_age}'
        )
        super().__init__(
            f"Sign in again (within the last {max_age // 60} minutes) to do this.",
            code=IdentityErrorCode.RECENT_SIGN_IN_REQUIRED,
            extensions={"max_age": max_age},
            headers={"WWW-Authenticate": challenge},
        )


def ensure_recent_sign_in(claims: AccessClaims, *, max_age: int, now: float | None = None) -> None:
    """Refuse when the sign-in behind ``claims`` is older than ``max_age`` seconds."""
    if (now if now is not None else time.time()) - claims.auth_time > max_age:
        raise StaleAuthentication(max_age)


def issue_access_token(
    *,
    subject: str,
    community: str,
    roles: Sequence[str],
    amr: Sequence[str],
    auth_time: int,
    session_id: str,
    now: float | None = None,
) -> str:
    """Sign an access token for ``subject`` in ``community`` with the active key."""
    issued_at = int(now if now is not None else time.time())
    key = current_keyring().active()
    payload = {
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "sub": subject,
        "community": community,
        "roles": sorted(roles),
        "amr": list(amr),
        "auth_time": auth_time,
        "sid": session_id,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + int(settings.ACCESS_TOKEN_TTL_SECONDS),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(payload, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": ACCESS_JWT_TYPE})


def _string_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidToken
    return tuple(value)


def verify_access_token(token: str, *, community: str) -> AccessClaims:
    """Verify signature, type, lifetime, issuer, audience and community of ``token``.

    Revocation is checked by the caller (it needs Redis); see
    :mod:`security.identity.revocation`.

    Raises:
        InvalidToken: for any failure whatsoever.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken from None
    if header.get("alg") != ALGORITHM or header.get("typ") != ACCESS_JWT_TYPE:
        raise InvalidToken
    key = find_verification_key(header.get("kid"))
    if key is None:
        raise InvalidToken
    seen = (hashlib.sha256(token.encode()).digest(), key.kid, settings.JWT_AUDIENCE, settings.JWT_ISSUER)
    claims = _verified.get(seen)
    if claims is None:
        claims = _decoded(token, key.public_key)
        _verified.put(seen, claims)
    elif not _within_lifetime(claims, now=time.time(), leeway=int(settings.JWT_LEEWAY_SECONDS)):
        raise InvalidToken
    return _claims(claims, community=community)


def _decoded(token: str, public_key: Any) -> dict[str, Any]:
    """jwt.decode with every check: signature, algorithm, required claims, lifetime, audience, issuer."""
    try:
        return jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],
            audience=settings.JWT_AUDIENCE,
            issuer=settings.JWT_ISSUER,
            leeway=int(settings.JWT_LEEWAY_SECONDS),
            options={"require": list(REQUIRED_CLAIMS), "strict_aud": True},
        )
    except jwt.PyJWTError:
        raise InvalidToken from None


def _within_lifetime(claims: dict[str, Any], *, now: float, leeway: int) -> bool:
    """PyJWT's lifetime checks again, for a token verified before (its claims are integers: it passed)."""
    return (
        int(claims["exp"]) > now - leeway and int(claims["nbf"]) <= now + leeway and int(claims["iat"]) <= now + leeway
    )


def _claims(claims: dict[str, Any], *, community: str) -> AccessClaims:
    strings = (claims["sub"], claims["community"], claims["jti"], claims["sid"])
    if not all(isinstance(value, str) for value in strings) or not isinstance(claims["auth_time"], int):
        raise InvalidToken
    try:
        uuid.UUID(claims["sub"])
    except ValueError:
        raise InvalidToken from None
    if claims["community"] != community:
        raise InvalidToken
    return AccessClaims(
        subject=claims["sub"],
        community=claims["community"],
        roles=_string_list(claims["roles"]),
        amr=_string_list(claims["amr"]),
        auth_time=claims["auth_time"],
        token_id=claims["jti"],
        session_id=claims["sid"],
        expires_at=int(claims["exp"]),
    )
