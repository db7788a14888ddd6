"""Sessions: sign-in, refresh-token rotation with reuse detection, sign-out.

A session (:class:`AuthSession`) is a family of refresh tokens. Each refresh
uses up the presented token and issues its child; presenting a used token
again means it was copied, so the whole session is revoked (and with it every access token of the
session, through :mod:`security.identity.revocation`).

A session also ends by itself (automatic logoff, HIPAA 164.312(a)(2)(iii)):
when it has not been refreshed for ``SESSION_IDLE_TIMEOUT_SECONDS``, and
``SESSION_MAX_AGE_SECONDS`` after its sign-in however often it was refreshed.
A refresh past either is refused with its own code and revokes the session,
as reuse does.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import Unauthenticated
from security.audit.context import annotate
from security.errors import IdentityErrorCode
from security.identity import revocation, throttle
from security.identity.mfa import verify_second_factor
from security.identity.tokens import AccessClaims, InvalidToken, issue_access_token
from security.models import AuthSession, RefreshToken, User, normalize_email
from security.selectors import member_roles
from tenants.models import Community

REFRESH_PREFIX = "rt1."
PASSWORD_AMR = ("pwd",)
MFA_AMR = ("pwd", "otp", "mfa")
# The audit reason of a used refresh token presented again (its answer stays the generic invalid_token).
REFRESH_TOKEN_REUSED = "refresh_token_reused"  # noqa: S105 # nosec B105 - an audit reason, not a secret
# The sessions that end by themselves say so: the client should sign in again, not retry.
_SESSION_ENDINGS: dict[str, str] = {
    IdentityErrorCode.SESSION_EXPIRED: "This session has reached its maximum lifetime; sign in again.",
    IdentityErrorCode.SESSION_IDLE_TIMEOUT: "This session was idle for too long; sign in again.",
}


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


def _issue(*, session: AuthSession, roles: list[str], parent: RefreshToken | None) -> TokenPair:
    raw = REFRESH_PREFIX + secrets.token_urlsafe(32)
    RefreshToken.objects.create(
        session=session,
        parent=parent,
        token_hash=_hash_refresh(raw),
        expires_at=timezone.now() + timedelta(seconds=settings.REFRESH_TOKEN_TTL_SECONDS),
    )
    access = issue_access_token(
        subject=str(session.user_id),
        community=session.community.slug,
        roles=roles,
        amr=session.amr,
        auth_time=int(session.auth_time.timestamp()),
        session_id=str(session.pk),
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


def _second_factor(*, user: User, otp: str | None, attempt: throttle.LoginAttempt) -> list[str]:
    """The ``amr`` of this sign-in, after checking the second factor when the account has one."""
    if not user.mfa_enabled:
        return list(PASSWORD_AMR)
    if not otp:
        attempt.released()
        raise Unauthenticated("This account needs its second factor: send 'otp'.", code=IdentityErrorCode.MFA_REQUIRED)
    if not verify_second_factor(user=user, otp=otp):
        attempt.failed()
        raise _invalid_credentials()
    return list(MFA_AMR)


def session_start(*, community: Community, email: str, password: str, otp: str | None, ip: str) -> TokenPair:
    """Sign in to ``community``; a non-member gets the same answer as a wrong password.

    Raises:
        TooManyRequests: the account or address is locked out.
        Unauthenticated: bad credentials (``invalid_credentials``) or a second factor is needed (``mfa_required``).
    """
    email = normalize_email(email)
    attempt = throttle.reserve_login_attempt(email=email, ip=ip)
    authenticated = _authenticate(community=community, email=email, password=password)
    if authenticated is None:
        attempt.failed()
        raise _invalid_credentials()
    user, roles = authenticated
    annotate(actor_id=str(user.pk), actor_roles=sorted(roles))
    amr = _second_factor(user=user, otp=otp, attempt=attempt)
    attempt.succeeded()
    with transaction.atomic():
        session = AuthSession.objects.create(user=user, community=community, amr=amr, auth_time=timezone.now())
        return _issue(session=session, roles=roles, parent=None)


def _ending(*, session: AuthSession, token: RefreshToken, now: datetime) -> str | None:
    """Why presenting ``token`` ends its (live) session now, or ``None`` when it may be rotated."""
    if token.used_at is not None:  # whoever holds the newest one, this session is compromised
        return REFRESH_TOKEN_REUSED
    if now - session.auth_time > timedelta(seconds=settings.SESSION_MAX_AGE_SECONDS):
        return IdentityErrorCode.SESSION_EXPIRED
    # The unused token is the family's newest: it was issued at the session's last sign-in or refresh.
    if now - token.created_at > timedelta(seconds=settings.SESSION_IDLE_TIMEOUT_SECONDS):
        return IdentityErrorCode.SESSION_IDLE_TIMEOUT
    return None


def _refusal(ending: str) -> Unauthenticated:
    """A session that ended by itself says so; reuse gets the generic answer every bad token gets."""
    detail = _SESSION_ENDINGS.get(ending)
    return InvalidToken() if detail is None else Unauthenticated(detail, code=ending)


def _rotate(*, community: Community, session: AuthSession, token: RefreshToken, now: datetime) -> TokenPair:
    roles = member_roles(user_id=session.user_id, community=community)
    if token.expires_at <= now or not roles:
        raise InvalidToken
    token.used_at = now
    token.save(update_fields=["used_at"])
    annotate(actor_id=str(session.user_id), actor_roles=sorted(roles))
    return _issue(session=session, roles=roles, parent=token)


def session_refresh(*, community: Community, refresh_token: str) -> TokenPair:
    """Rotate a refresh token; reuse of a used one, or a session past its idle or absolute lifetime, revokes it.

    Every refresh of a session, its logout and its reuse detection lock the
    session row, so they happen one after the other. A revocation here is
    saved after its savepoint is released, so raising the refusal does not
    undo it (the audit middleware commits 401 answers with their event).

    Raises:
        InvalidToken: unknown, expired, reused, revoked, other community, or no longer a member.
        Unauthenticated: the session ended by itself (``session_idle_timeout``, ``session_expired``).
    """
    token = (
        RefreshToken.objects.filter(token_hash=_hash_refresh(refresh_token), session__community=community)
        .only("id", "session_id")
        .first()
    )
    if token is None:
        raise InvalidToken
    with transaction.atomic():
        session = AuthSession.objects.select_for_update().select_related("community").get(pk=token.session_id)
        token = RefreshToken.objects.get(pk=token.pk)  # re-read under the session lock
        if session.revoked_at is not None:
            raise InvalidToken
        now = timezone.now()
        ending = _ending(session=session, token=token, now=now)
        if ending is None:
            return _rotate(community=community, session=session, token=token, now=now)
        session.revoked_at = now
        session.save(update_fields=["revoked_at"])
    annotate(actor_id=str(session.user_id), reasons=[str(ending), "session_revoked"])
    revocation.revoke_session(str(session.pk))
    raise _refusal(ending)


def session_end(*, claims: AccessClaims) -> None:
    """Sign out now: the access token, its session and every refresh token of it stop working."""
    revocation.revoke_token(claims.token_id, expires_at=claims.expires_at)
    revocation.revoke_session(claims.session_id)
    with transaction.atomic():
        session = AuthSession.objects.select_for_update().filter(pk=claims.session_id).first()
        if session is not None and session.revoked_at is None:
            session.revoked_at = timezone.now()
            session.save(update_fields=["revoked_at"])
