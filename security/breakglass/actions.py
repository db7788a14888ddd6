"""Opening emergency access, ending it early, and reviewing it once it has ended.

The rules that bind every path (the API, a shell command, a task) live here,
not in a view: nobody reviews their own grant, whatever roles they hold; a
grant is reviewed only once it has ended (expired or revoked); only its holder
or a compliance officer ends it early; an alarm is raised once per grant and
code, with its audit event.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from core.errors import Conflict, Forbidden, NotFound
from security.audit.context import annotate
from security.audit.sequencer import audit_chain
from security.audit.staging import record
from security.breakglass.alarms import alarmed, grant_alarms
from security.breakglass.errors import BreakGlassErrorCode
from security.breakglass.models import AlarmCode, BreakGlassAlarm, BreakGlassGrant, Scope
from security.breakglass.selectors import officers_of
from security.breakglass.tasks import enqueue_notification
from security.roles import Role
from tenants.models import Community


class ScopeExists(Protocol):
    """What ``BREAK_GLASS_SCOPE_EXISTS`` names (the research apps' selector: security never imports services)."""

    def __call__(self, *, scope: str, scope_id: str) -> bool:
        """Whether the participant or study ``scope_id`` exists in the current community."""


def grant_open(
    *, user_id: str, scope: str, scope_id: str, reason: str, minutes: int, community: str
) -> BreakGlassGrant:
    """Open a time-boxed grant over one participant or study, and notify compliance officers at once.

    The new row, with ``notified_at`` empty, is the notification's outbox: it
    commits with the grant. The notice is queued once that commits; a broker
    that cannot take it is logged, never raised (the grant is open, the sweep
    queues the notice again).

    Raises:
        NotFound: the participant or study does not exist in this community.
    """
    exists: ScopeExists = import_string(settings.BREAK_GLASS_SCOPE_EXISTS)
    if scope not in Scope.values or not exists(scope=scope, scope_id=scope_id):
        raise NotFound(f"No such {scope}.", code=BreakGlassErrorCode.NOT_FOUND)
    with transaction.atomic():
        grant = BreakGlassGrant.objects.create(
            user_id=uuid.UUID(user_id),
            scope=scope,
            scope_id=scope_id,
            reason=reason,
            expires_at=timezone.now() + timedelta(minutes=minutes),
        )
        grant_id = str(grant.id)
        transaction.on_commit(lambda: enqueue_notification(community=community, grant_id=grant_id))
    annotate(resource_type="break_glass", resource_id=grant_id)
    return grant


def _locked_grant(grant_id: str) -> BreakGlassGrant:
    grant = BreakGlassGrant.objects.select_for_update().filter(pk=grant_id).first()
    if grant is None:
        raise NotFound("No such break-glass grant.", code=BreakGlassErrorCode.NOT_FOUND)
    return grant


def grant_revoke(*, grant_id: str, revoker: str, revoker_roles: Collection[str]) -> BreakGlassGrant:
    """End a grant now: from this moment the policy no longer finds it; who and when are kept.

    Its holder may end it, and so may a compliance officer; to anyone else a
    grant they do not hold looks like a missing one. The revocation and its
    audit event commit together. Saving the grant forgets the policy's kept
    break-glass answers of this community at once and again at commit.

    Raises:
        NotFound: no such grant, or one the revoker neither holds nor oversees.
        Conflict: the grant has ended already (expired or revoked).
    """
    with transaction.atomic():
        grant = _locked_grant(grant_id)
        if str(grant.user_id) != str(uuid.UUID(revoker)) and Role.COMPLIANCE_OFFICER not in revoker_roles:
            raise NotFound("No such break-glass grant.", code=BreakGlassErrorCode.NOT_FOUND)
        now = timezone.now()
        if not grant.is_active(now):
            raise Conflict(
                "This break-glass grant has ended already (expired or revoked).",
                code=BreakGlassErrorCode.ALREADY_ENDED,
            )
        grant.revoked_at, grant.revoked_by = now, uuid.UUID(revoker)
        grant.save(update_fields=["revoked_at", "revoked_by"])
        record(
            action="break_glass.revoke",
            actor_id=revoker,
            actor_roles=sorted(revoker_roles),
            resource_type="break_glass",
            resource_id=str(grant.id),
        )
    annotate(resource_type="break_glass", resource_id=str(grant.id))
    return grant


def grant_review(*, grant_id: str, reviewer: str, comment: str) -> BreakGlassGrant:
    """Mark an ended grant's use reviewed with a comment (once, and never by its own holder).

    A holder reviewing their own grant is refused whatever roles they hold
    (coordinator and compliance officer at once, say); the refusal is an audit
    event of its own, kept although nothing else is.

    Raises:
        NotFound: no such grant. Forbidden: the reviewer holds the grant.
        Conflict: already reviewed, or still active (review it once it has expired or been revoked).
    """
    with transaction.atomic():
        grant = _locked_grant(grant_id)
        own = str(grant.user_id) == str(uuid.UUID(reviewer))
        if not own:
            _check_reviewable(grant)
            grant.reviewed_at, grant.reviewed_by, grant.review_comment = timezone.now(), uuid.UUID(reviewer), comment
            grant.save(update_fields=["reviewed_at", "reviewed_by", "review_comment"])
    annotate(resource_type="break_glass", resource_id=str(grant.id))
    if own:
        # Outside the block above, so the refusal stays on record when the error is raised.
        record(
            action="break_glass.review",
            actor_id=reviewer,
            resource_type="break_glass",
            resource_id=str(grant.id),
            outcome="deny",
            reasons=[BreakGlassErrorCode.SELF_REVIEW],
        )
        raise Forbidden("Nobody reviews their own break-glass grant.", code=BreakGlassErrorCode.SELF_REVIEW)
    audit_chain()  # the reviewer is shown the grant's uses
    return grant


def _check_reviewable(grant: BreakGlassGrant) -> None:
    if grant.reviewed_at is not None:
        raise Conflict("This use of break-glass was already reviewed.", code=BreakGlassErrorCode.ALREADY_REVIEWED)
    if grant.is_active(timezone.now()):
        raise Conflict(
            "This break-glass grant is still active: review it once it has expired or been revoked.",
            code=BreakGlassErrorCode.STILL_ACTIVE,
        )


# Who raises alarms: the periodic sweep, on no member's behalf.
ALARM_ACTOR = "system:break-glass-alarms"


def alarms_raise(*, community: Community, now: datetime) -> list[tuple[BreakGlassGrant, list[AlarmCode]]]:
    """Record each alarm of this schema's grants not raised before, each with its audit event; return what stands.

    Runs in the schema of ``community``. An alarm is raised once per grant and
    code (the row and its ``break_glass.alarm`` event, a system event in the
    community's log, commit together); one that stands on a later sweep is
    returned again but not raised again. Returns every alarmed grant with its
    alarms, oldest first.
    """
    officers = len(officers_of(community))
    standing: list[tuple[BreakGlassGrant, list[AlarmCode]]] = []
    with transaction.atomic():
        grants = list(alarmed(BreakGlassGrant.objects.order_by("created_at"), now=now).select_for_update(of=("self",)))
        raised = {(str(grant_id), code) for grant_id, code in _alarm_rows(grants)}
        for grant in grants:
            codes = grant_alarms(grant, now=now, officers=officers)
            standing.append((grant, codes))
            for code in codes:
                if (str(grant.id), code) not in raised:
                    _alarm_raise(grant, code, now)
    return standing


def _alarm_rows(grants: Collection[BreakGlassGrant]) -> list[tuple[uuid.UUID, str]]:
    return list(BreakGlassAlarm.objects.filter(grant__in=grants).values_list("grant_id", "code"))


def _alarm_raise(grant: BreakGlassGrant, code: AlarmCode, now: datetime) -> None:
    BreakGlassAlarm.objects.create(grant=grant, code=code, raised_at=now)
    record(
        action="break_glass.alarm",
        actor_id=ALARM_ACTOR,
        resource_type="break_glass",
        resource_id=str(grant.id),
        reasons=[code],
    )
