"""Reading break-glass grants: the active one a policy input carries, the review queue and its words, the outbox.

A grant's uses are the audit events whose policy decision was made under it:
the decision record keeps the policy input, whose ``context.break_glass``
names the grant (:func:`grant_uses`). No time window of the holder's is
guessed, so a use chained just after the grant expired is still its use, and
two grants of one holder that overlap never share one.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.db.models import F, Q, QuerySet, Window
from django.db.models.expressions import RawSQL
from django.db.models.functions import RowNumber
from django.utils import timezone
from django.utils.module_loading import import_string

from core.errors import ErrorCode, NotFound
from core.generations import GenerationCache
from core.schema import tenant_connection
from policy.matrix import policy_matrix
from security.audit.context import GRANT_REASON_PREFIX, annotate, grant_reason
from security.audit.models import AuditEvent
from security.audit.sequencer import audit_chain
from security.breakglass.alarms import alarmed, grant_alarms
from security.breakglass.models import AlarmCode, BreakGlassGrant, Scope
from security.models import Membership, User
from security.roles import Role
from tenants.models import Community

# At most this many uses of one grant are shown; ``uses_truncated`` says when there were more.
USES_SHOWN = 500
# The purpose of use a request states to ask for its holder's grant (X-Purpose-Of-Use).
EMERGENCY = "emergency"

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


def review_queue(
    *, reviewed: bool | None = None, alarm: bool | None = None, now: datetime | None = None
) -> QuerySet[BreakGlassGrant]:
    """Grants, newest first; ``reviewed=False`` is the queue of uses awaiting a compliance officer (oldest first).

    ``alarm=True`` keeps the grants that raise an alarm at ``now``, ``False``
    those that raise none. Staged audit events are chained first, so each
    grant's uses are complete.
    """
    audit_chain()
    grants = BreakGlassGrant.objects.all()
    if reviewed is not None:
        grants = grants.filter(reviewed_at__isnull=not reviewed)
    if alarm is not None:
        grants = alarmed(grants, now=now or timezone.now(), alarm=alarm)
    if reviewed is False or alarm is True:
        # A queue: oldest first, so a page cut short never hides the longest-waiting grant behind newer ones.
        grants = grants.order_by("created_at", "id")
    return grants


def standing_alarms(*, community: Community, now: datetime) -> list[tuple[BreakGlassGrant, list[AlarmCode]]]:
    """Each grant of ``community`` (the current schema's) that raises an alarm at ``now``, oldest first."""
    officers = len(officers_of(community))
    grants = alarmed(BreakGlassGrant.objects.order_by("created_at"), now=now)
    return [(grant, grant_alarms(grant, now=now, officers=officers)) for grant in grants]


def officers_of(community: Community) -> list[str]:
    """The emails of the active compliance officers of ``community``, sorted."""
    return _members_of(community, [Role.COMPLIANCE_OFFICER])


def alarm_recipients(community: Community) -> list[str]:
    """Who is mailed the alarm digest: the active owners and compliance officers of ``community``, sorted."""
    return _members_of(community, [Role.OWNER, Role.COMPLIANCE_OFFICER])


def _members_of(community: Community, roles: list[str]) -> list[str]:
    emails = Membership.objects.filter(community=community, role__in=roles, user__is_active=True).values_list(
        "user__email", flat=True
    )
    return sorted(set(emails))


@dataclass(frozen=True)
class Person:
    """Someone a reviewer reads about: their id, and how the queue names them (name and email, or the email)."""

    user_id: str
    name: str


def people(user_ids: Iterable[Any]) -> dict[str, Person]:
    """How the queue names each of ``user_ids``: ``Ada Lovelace <ada@example.org>``, or the email without a name.

    An id without a user (removed since) is named by the id itself.
    """
    ids = {str(user_id) for user_id in user_ids if user_id is not None}
    found = User.objects.filter(pk__in=ids).values_list("pk", "full_name", "email")
    named = {str(pk): f"{full_name} <{email}>" if full_name else email for pk, full_name, email in found}
    return {user_id: Person(user_id, named.get(user_id, user_id)) for user_id in ids}


class ScopeWords(Protocol):
    """What ``BREAK_GLASS_SCOPE_WORDS`` names (the research apps' selector; security never imports them)."""

    def __call__(self, *, scopes: Collection[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """What grants over each ``(scope, scope_id)`` cover, in words; those the community lacks are left out."""


def scope_words(grants: Iterable[BreakGlassGrant]) -> dict[tuple[str, str], str]:
    """What each of ``grants`` covered, in words: ``one participant, P-…`` or ``the study '<title>' (protocol <n>)``.

    The words come from the research apps through ``BREAK_GLASS_SCOPE_WORDS``
    (security does not import them), one query per kind of scope for a whole
    page; a participant or study no longer found is named by its id.
    """
    scopes = {(grant.scope, grant.scope_id) for grant in grants}
    words_of: ScopeWords = import_string(settings.BREAK_GLASS_SCOPE_WORDS)
    found = words_of(scopes=scopes)
    return {
        (scope, scope_id): found.get((scope, scope_id))
        or (f"one participant, {scope_id}" if scope == Scope.PARTICIPANT else f"the study {scope_id}")
        for scope, scope_id in scopes
    }


# The grant an event names among its reasons (each names at most one).
_GRANT_OF_EVENT = "(SELECT r FROM jsonb_array_elements_text(reasons) AS r WHERE r LIKE %s LIMIT 1)"


def grant_uses(grants: Collection[BreakGlassGrant], *, limit: int = USES_SHOWN) -> dict[str, list[dict[str, Any]]]:
    """Each grant's uses, oldest first, at most ``limit`` + 1 each (the extra one says there are more).

    A use is an event of the holder decided while the grant was theirs (its
    chained reasons name the grant: :func:`security.audit.context.grant_reason`)
    that went through the grant (flagged ``break_glass``), asked for it
    (purpose ``emergency``) or was a PHI action under any purpose, allowed or
    refused. The grant is read from the chain, not from a decision record an
    operator could edit unseen. One query for all of ``grants``.
    """
    if not grants:
        return {}
    markers = [grant_reason(str(grant.id)) for grant in grants]
    named = Q()
    for marker in markers:
        named |= Q(reasons__contains=[marker])
    events = (
        AuditEvent.objects.filter(named, actor_id__in={str(grant.user_id) for grant in grants})
        .filter(Q(break_glass=True) | Q(purpose=EMERGENCY) | Q(action__in=list(policy_matrix().phi_actions)))
        .annotate(grant=RawSQL(_GRANT_OF_EVENT, [GRANT_REASON_PREFIX + "%"]))  # noqa: S611 # nosec B611 - constant SQL
        .annotate(rank=Window(RowNumber(), partition_by=[F("grant")], order_by=F("sequence").asc()))
        .filter(rank__lte=limit + 1)
        .order_by("sequence")
        .values(
            "grant",
            "sequence",
            "occurred_at",
            "staged_at",
            "action",
            "resource_type",
            "resource_id",
            "participant_pseudonyms",
            "outcome",
            "http_status",
        )
    )
    uses: dict[str, list[dict[str, Any]]] = {str(grant.id): [] for grant in grants}
    for event in events:
        row = dict(event)
        uses[str(row.pop("grant")).removeprefix(GRANT_REASON_PREFIX)].append(row)
    return uses


def use_description(action: str) -> str:
    """The policy's own description of ``action`` (``phi_actions``, as the accounting gives it), else its name."""
    return policy_matrix().phi_actions.get(action, action)


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
