"""Reads of identity data (public schema)."""

from __future__ import annotations

import uuid

from security.models import Membership, User
from tenants.models import Community


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
