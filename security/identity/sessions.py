"""Sessions: sign-in, refresh-token rotation with reuse detection, sign-out.

A session is a family of refresh tokens. Each refresh uses up the presented
token and issues its child; presenting a used token again means it was
copied, so the whole family is revoked (and with it every access token of the
session, through :mod:`security.identity.revocation`).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from gateway.errors import Unauthenticated
from security.errors import IdentityErrorCode
from security.identity import revocation, throttle
from security.identity.mfa import verify_second_factor
from security.identity.tokens import AccessClaims, InvalidToken, issue_access_token
from security.models import RefreshToken, User, normalize_email
from security.selectors import member_roles
from tenants.models import Community

REFRESH_PREFIX = "rt1."
PASSWORD_AMR = ("pwd",)
MFA_AMR = ("pwd", "otp", "mfa")


@dataclass(frozen=True)
class TokenPair:
    """What a successful sign-in or refresh returns."""

    access: str
    refresh: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth 2.0 token type, not a secret


def _invalid_credentials() -> Unauthenticated:
    return Unauthenticated(
        "The email, password or second factor is not valid.", code=IdentityErrorCode.INVALID_CREDENTIALS
    )


def _hash_refresh(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _issue(
    *,
    user: User,
    community: Community,
    roles: list[str],
    amr: list[str],
    auth_time: datetime,
    family: uuid.UUID,
    parent: RefreshToken | None,
) -> TokenPair:
    raw = REFRESH_PREFIX + secrets.token_urlsafe(32)
    RefreshToken.objects.create(
        family=family,
        parent=parent,
        user=user,
        community=community,
        token_hash=_hash_refresh(raw),
        amr=amr,
        auth_time=auth_time,
        expires_at=timezone.now() + timedelta(seconds=settings.REFRESH_TOKEN_TTL_SECONDS),
    )
    access = issue_access_token(
        subject=str(user.pk),
        community=community.slug,
        roles=roles,
        amr=amr,
        auth_time=int(auth_time.timestamp()),
        session_id=str(family),
    )
    return TokenPair(access=access, refresh=raw, expires_in=int(settings.ACCESS_TOKEN_TTL_SECONDS))


def _authenticate(*, community: Community, email: str, password: str) -> tuple[User, list[str]] | None:
    user = User.objects.filter(email=email, is_active=True).first()
    if user is None:
        User().set_password(password)  # same cost as a real check: no timing oracle for unknown emails
        return None
    if not user.check_password(password):
        return None
    roles = member_roles(user_id=user.pk, community=community)
    return (user, roles) if roles else None


def session_start(*, community: Community, email: str, password: str, otp: str | None, ip: str) -> TokenPair:
    """Sign in to ``community``; a non-member gets the same answer as a wrong password.

    Raises:
        TooManyRequests: the account or address is locked out.
        Unauthenticated: bad credentials (``invalid_credentials``) or a second factor is needed (``mfa_required``).
    """
    email = normalize_email(email)
    throttle.ensure_login_allowed(email=email, ip=ip)
    authenticated = _authenticate(community=community, email=email, password=password)
    if authenticated is None:
        throttle.record_login_failure(email=email, ip=ip)
        raise _invalid_credentials()
    user, roles = authenticated
    amr = list(PASSWORD_AMR)
    if user.mfa_enabled:
        if not otp:
            raise Unauthenticated(
                "This account needs its second factor: send 'otp'.", code=IdentityErrorCode.MFA_REQUIRED
            )
        if not verify_second_factor(user=user, otp=otp):
            throttle.record_login_failure(email=email, ip=ip)
            raise _invalid_credentials()
        amr = list(MFA_AMR)
    throttle.record_login_success(email=email)
    with transaction.atomic():
        return _issue(
            user=user,
            community=community,
            roles=roles,
            amr=amr,
            auth_time=timezone.now(),
            family=uuid.uuid4(),
            parent=None,
        )


def session_refresh(*, community: Community, refresh_token: str) -> TokenPair:
    """Rotate a refresh token; reuse of a used or revoked one revokes its whole session.

    Raises:
        InvalidToken: unknown, expired, reused, other community, or no longer a member.
    """
    reused_family: uuid.UUID | None = None
    with transaction.atomic():
        row = (
            RefreshToken.objects.select_for_update()
            .select_related("user")
            .filter(token_hash=_hash_refresh(refresh_token), community=community)
            .first()
        )
        if row is None:
            raise InvalidToken
        if row.used_at is not None or row.revoked_at is not None:
            reused_family = row.family
            RefreshToken.objects.filter(family=row.family, revoked_at__isnull=True).update(revoked_at=timezone.now())
        else:
            roles = member_roles(user_id=row.user_id, community=community)
            if row.expires_at <= timezone.now() or not roles:
                raise InvalidToken
            row.used_at = timezone.now()
            row.save(update_fields=["used_at"])
            return _issue(
                user=row.user,
                community=community,
                roles=roles,
                amr=list(row.amr),
                auth_time=row.auth_time,
                family=row.family,
                parent=row,
            )
    revocation.revoke_session(str(reused_family))
    raise InvalidToken


def session_end(*, claims: AccessClaims) -> None:
    """Sign out now: the access token, its session and its refresh tokens stop working."""
    revocation.revoke_token(claims.token_id, expires_at=claims.expires_at)
    revocation.revoke_session(claims.session_id)
    RefreshToken.objects.filter(family=claims.session_id, revoked_at__isnull=True).update(revoked_at=timezone.now())
