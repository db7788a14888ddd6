"""Opening emergency access, and reviewing it afterwards."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from core.errors import Conflict, NotFound
from security.audit.context import annotate
from security.audit.sequencer import audit_chain
from security.breakglass.errors import BreakGlassErrorCode
from security.breakglass.models import BreakGlassGrant, Scope


class ScopeExists(Protocol):
    """What ``BREAK_GLASS_SCOPE_EXISTS`` names (the research apps' selector: security never imports services)."""

    def __call__(self, *, scope: str, scope_id: str) -> bool:
        """Whether the participant or study ``scope_id`` exists in the current community."""


def grant_open(
    *, user_id: str, scope: str, scope_id: str, reason: str, minutes: int, community: str
) -> BreakGlassGrant:
    """Open a time-boxed grant over one participant or study, and notify compliance officers at once.

    Raises:
        NotFound: the participant or study does not exist in this community.
    """
    exists: ScopeExists = import_string(settings.BREAK_GLASS_SCOPE_EXISTS)
    if scope not in Scope.values or not exists(scope=scope, scope_id=scope_id):
        raise NotFound(f"No such {scope}.", code=BreakGlassErrorCode.NOT_FOUND)
    grant = BreakGlassGrant.objects.create(
        user_id=uuid.UUID(user_id),
        scope=scope,
        scope_id=scope_id,
        reason=reason,
        expires_at=timezone.now() + timedelta(minutes=minutes),
    )
    annotate(resource_type="break_glass", resource_id=str(grant.id))
    transaction.on_commit(lambda: _notify(grant, community))
    return grant


def _notify(grant: BreakGlassGrant, community: str) -> None:
    from security.breakglass.tasks import notify_compliance_officers  # noqa: PLC0415  # tasks import actions

    notify_compliance_officers.apply_async(args=(community, str(grant.id)), retry=False)


def grant_review(*, grant_id: str, reviewer: str, comment: str) -> BreakGlassGrant:
    """Mark a grant's use reviewed with a comment (once).

    Raises:
        NotFound: no such grant. Conflict: already reviewed.
    """
    with transaction.atomic():
        grant = BreakGlassGrant.objects.select_for_update().filter(pk=grant_id).first()
        if grant is None:
            raise NotFound("No such break-glass grant.", code=BreakGlassErrorCode.NOT_FOUND)
        if grant.reviewed_at is not None:
            raise Conflict("This use of break-glass was already reviewed.", code=BreakGlassErrorCode.ALREADY_REVIEWED)
        grant.reviewed_at, grant.reviewed_by, grant.review_comment = timezone.now(), uuid.UUID(reviewer), comment
        grant.save(update_fields=["reviewed_at", "reviewed_by", "review_comment"])
    audit_chain()  # the reviewer is shown the grant's uses
    annotate(resource_type="break_glass", resource_id=str(grant.id))
    return grant
