"""Reading break-glass grants: the active one a policy input carries, the review queue, the notification outbox."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from core.errors import ErrorCode, NotFound
from core.generations import GenerationCache
from core.schema import tenant_connection
from security.audit.context import annotate
from security.audit.sequencer import audit_chain
from security.breakglass.models import BreakGlassGrant

# Per community (its schema): user id -> the newest grant neither expired nor revoked, or None.
GRANTS = GenerationCache("breakglass")


def break_glass_context(*, subject_id: str, community: str, now: int) -> dict[str, Any] | None:
    """``context.break_glass`` for the policy: the subject's newest active grant in this schema.

    Every guarded request asks, and nearly every answer is "none": the answer
    is kept in :data:`GRANTS` until a grant of this community changes (a
    revocation saves the grant, so it is forgotten at once and again at
    commit). A kept grant that has expired since is looked up again (an older
    one may outlast it). A revoked grant is never an answer.
    """
    try:
        user_id = uuid.UUID(subject_id)
    except ValueError:
        return None
    lookup = GRANTS.get(community, str(user_id))
    grant = lookup.value if lookup.hit else None
    if not lookup.hit or (grant is not None and grant["expires_at"] <= now):
        grant = _newest_grant(user_id, now)
        GRANTS.put(community, lookup, str(user_id), grant)
    if grant is None:
        return None
    return {"active": True, "subject": subject_id, "community": community, **grant}


def _newest_grant(user_id: uuid.UUID, now: int) -> dict[str, Any] | None:
    grant = (
        BreakGlassGrant.objects.filter(
            user_id=user_id, expires_at__gt=datetime.fromtimestamp(now, tz=UTC), revoked_at__isnull=True
        )
        .order_by("-created_at")
        .only("id", "scope", "scope_id", "expires_at")
        .first()
    )
    if grant is None:
        return None
    return {
        "grant_id": str(grant.id),
        "scope": grant.scope,
        "scope_id": grant.scope_id,
        "expires_at": int(grant.expires_at.timestamp()),
    }


def forget_grants(**_: Any) -> None:
    """Signal receiver: a grant of the current community changed, so its users' answers are looked up again."""
    GRANTS.forget(tenant_connection().schema_name)


def review_queue(*, reviewed: bool | None = None) -> QuerySet[BreakGlassGrant]:
    """Grants, newest first; ``reviewed=False`` is the queue of uses awaiting a compliance officer.

    Staged audit events are chained first, so each grant's uses are complete.
    """
    audit_chain()
    grants = BreakGlassGrant.objects.all()
    if reviewed is not None:
        grants = grants.filter(reviewed_at__isnull=not reviewed)
    return grants


def unnotified_grants(*, older_than_seconds: int) -> QuerySet[BreakGlassGrant]:
    """The outbox: grants of this schema whose mail to compliance officers is still owed, oldest first.

    Only those opened more than ``older_than_seconds`` ago: a younger one's
    notification, queued when it committed, is most likely on its way.
    """
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return BreakGlassGrant.objects.filter(notified_at__isnull=True, created_at__lte=cutoff).order_by("created_at")


def grant_attributes(*, grant_id: Any, action: str) -> dict[str, Any]:
    """What the policy may know of one grant: who holds it (the policy refuses self-review by it).

    Raises:
        NotFound: no such grant in this community: the same audited 404 a hidden denial gives.
    """
    holder = BreakGlassGrant.objects.filter(pk=grant_id).values_list("user_id", flat=True).first()
    if holder is None:
        annotate(action=action, resource_type="break_glass", resource_id=str(grant_id), reasons=[ErrorCode.NOT_FOUND])
        raise NotFound.missing()
    return {"holder": str(holder)}
