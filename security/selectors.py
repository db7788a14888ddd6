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


def active_user(*, user_id: uuid.UUID | str) -> User | None:
    """The active user with this id, or ``None``."""
    return User.objects.filter(pk=user_id, is_active=True).first()
