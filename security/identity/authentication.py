"""DRF authentication by bearer access token, bound to the request's community.

Order of checks: a token is present and well formed; the request is on a
community host; signature, type, lifetime, issuer, audience and community
(:func:`verify_access_token`); its session not past its absolute lifetime
(``SESSION_MAX_AGE_SECONDS`` since the sign-in) and not revoked (Redis, or the
database when Redis has no answer); the user is still active and still a
member. The roles used from here on are the member's current roles, not the
ones frozen into the token.
"""

from __future__ import annotations

import dataclasses
import time

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from core.problems import BEARER_CHALLENGE
from security.identity import revocation
from security.identity.throttle import check_user
from security.identity.tokens import AccessClaims, InvalidToken, verify_access_token
from security.models import User
from security.selectors import calling_member
from tenants.context import community_of


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header; ``None`` when there is no header."""
    header = str(request.META.get("HTTP_AUTHORIZATION", ""))
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken
    return token.strip()


def member_of(request: Request) -> tuple[User, AccessClaims]:
    """The authenticated member and their verified claims (with current roles).

    Raises:
        InvalidToken: the request was not authenticated by an access token (401).
    """
    user, claims = request.user, request.auth
    if not isinstance(user, User) or not isinstance(claims, AccessClaims):
        raise InvalidToken
    return user, claims


def claims_of(request: Request) -> AccessClaims:
    """The verified claims of the request's access token (see :func:`member_of`)."""
    return member_of(request)[1]


class AccessTokenAuthentication(BaseAuthentication):
    """Authenticate ``Authorization: Bearer <access token>``; every failure is the same 401."""

    def authenticate(self, request: Request) -> tuple[User, AccessClaims] | None:
        """Return (user, claims with current roles), ``None`` without a header, or raise 401."""
        token = bearer_token(request)
        if token is None:
            return None
        community = community_of(request)
        if community is None:
            raise InvalidToken
        claims = verify_access_token(token, community=community.slug)
        if time.time() - claims.auth_time > settings.SESSION_MAX_AGE_SECONDS:  # the session has ended
            raise InvalidToken
        if revocation.is_revoked(token_id=claims.token_id, session_id=claims.session_id):
            raise InvalidToken
        member = calling_member(user_id=claims.subject, community=community)
        if member is None:
            raise InvalidToken
        user, roles = member
        check_user(user.pk)  # per-user limit: before any policy decision is spent on the request
        return user, dataclasses.replace(claims, roles=tuple(roles))

    def authenticate_header(self, request: Request) -> str:
        """The challenge sent with 401 answers."""
        return BEARER_CHALLENGE


class AccessTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]  # untyped __init_subclass__
    """Describes :class:`AccessTokenAuthentication` in the OpenAPI schema (HTTP bearer, JWT)."""

    target_class = "security.identity.authentication.AccessTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        """A bearer JWT obtained from ``POST /api/v1/auth/token`` on the community's host."""
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
