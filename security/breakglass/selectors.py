"""Reading break-glass grants: the active one a policy input carries, and the review queue."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet

from security.audit.chain import audit_chain
from security.breakglass.models import BreakGlassGrant


def break_glass_context(*, subject_id: str, community: str, now: int) -> dict[str, Any] | None:
    """``context.break_glass`` for the policy: the subject's newest unexpired grant in this schema."""
    try:
        user_id = uuid.UUID(subject_id)
    except ValueError:
        return None
    moment = datetime.fromtimestamp(now, tz=UTC)
    grant = (
        BreakGlassGrant.objects.filter(user_id=user_id, expires_at__gt=moment)
        .order_by("-created_at")
        .only("id", "scope", "scope_id", "expires_at")
        .first()
    )
    if grant is None:
        return None
    return {
        "active": True,
        "grant_id": str(grant.id),
        "subject": subject_id,
        "community": community,
        "scope": grant.scope,
        "scope_id": grant.scope_id,
        "expires_at": int(grant.expires_at.timestamp()),
    }


def review_queue(*, reviewed: bool | None = None) -> QuerySet[BreakGlassGrant]:
    """Grants, newest first; ``reviewed=False`` is the queue of uses awaiting a compliance officer.

    Staged audit events are chained first, so each grant's uses are complete.
    """
    audit_chain()
    grants = BreakGlassGrant.objects.all()
    if reviewed is not None:
        grants = grants.filter(reviewed_at__isnull=not reviewed)
    return grants
