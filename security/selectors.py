"""Reads of identity data (public schema)."""

from __future__ import annotations

import uuid
from typing import Any

from core.generations import GenerationCache, instance_from
from security.models import AuthSession, Membership, User
from tenants.models import Community

# Every authenticated request asks who the caller is in its community. The answers (the user's
# flags and roles, or "not a member") are kept in Redis until any membership or user changes.
MEMBERS = GenerationCache("members")
_SCOPE = "all"
_USER_FIELDS = ("id", "email", "is_active", "is_staff", "is_superuser")


def member_roles(*, user_id: uuid.UUID | str, community: Community) -> list[str]:
    """The roles an active user holds in ``community``; empty when not a member."""
    return sorted(
        Membership.objects.filter(user_id=user_id, user__is_active=True, community=community).values_list(
            "role", flat=True
        )
    )


def active_member(*, user_id: uuid.UUID | str, community: Community) -> tuple[User, list[str]] | None:
    """The active user and their roles in ``community`` (one query), or ``None`` when not a member."""
    memberships = list(
        Membership.objects.filter(user_id=user_id, user__is_active=True, community=community).select_related("user")
    )
    if not memberships:
        return None
    return memberships[0].user, sorted(membership.role for membership in memberships)


def calling_member(*, user_id: uuid.UUID | str, community: Community) -> tuple[User, list[str]] | None:
    """:func:`active_member` for a request's caller, answered from :data:`MEMBERS` when it can.

    One Redis round trip instead of a query. The user comes with the fields
    authentication reads; any other is loaded on first use. The answers are
    forgotten on every save or delete of a membership or a user (signals), so
    such changes must go through the models, never a queryset ``update()``;
    tasks and other readers that are not on every request use
    :func:`active_member`.
    """
    key = f"{community.pk}:{user_id}"
    lookup = MEMBERS.get(_SCOPE, key)
    if lookup.hit:
        return _member(lookup.value)
    found = active_member(user_id=user_id, community=community)
    if found is None:
        MEMBERS.put(_SCOPE, lookup, key, None)
        return None
    user, roles = found
    kept = {name: str(user.pk) if name == "id" else getattr(user, name) for name in _USER_FIELDS}
    MEMBERS.put(_SCOPE, lookup, key, {"user": kept, "roles": roles})
    return found


def _member(kept: dict[str, Any] | None) -> tuple[User, list[str]] | None:
    if kept is None:
        return None
    user = instance_from(User, {**kept["user"], "id": uuid.UUID(kept["user"]["id"])})
    return user, list(kept["roles"])


def forget_members(**_: Any) -> None:
    """Signal receiver: a membership or a user changed, so every caller is looked up again."""
    MEMBERS.forget(_SCOPE)


def session_is_live(*, session_id: str) -> bool:
    """Whether the session named by an access token's ``sid`` exists and is not revoked (the database's answer).

    An id that is not a session's (it cannot be, in a token we signed) is not live.
    """
    try:
        key = uuid.UUID(session_id)
    except ValueError:
        return False
    return AuthSession.objects.filter(pk=key, revoked_at__isnull=True).exists()
