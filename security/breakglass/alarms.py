"""When a grant raises an alarm: its review is overdue, or compliance officers were never told of it.

Both rules are read here and nowhere else, in two forms that must agree: on
one grant (:func:`grant_alarms`, what the queue shows) and as a query
(:func:`alarmed`, what ``?alarm=true`` and the sweep select).

- ``review_overdue``: the grant ended (expired or revoked) more than
  ``BREAK_GLASS_REVIEW_DUE_HOURS`` ago and nobody has reviewed it.
- ``not_notified``: ``BREAK_GLASS_NOTIFY_DUE_MINUTES`` after it opened, its
  notice has still not gone out (the mail server keeps failing, the retries
  ran out, or the broker lost the task).
- ``no_one_to_notify``: the same, while the community has no active
  compliance officer: nobody could have been told, which is no notification.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce, Least

from security.breakglass.models import AlarmCode, BreakGlassGrant


def review_due() -> timedelta:
    """How long after a grant ended its review is due."""
    return timedelta(hours=settings.BREAK_GLASS_REVIEW_DUE_HOURS)


def notice_due() -> timedelta:
    """How long after a grant opened its notice must have gone out."""
    return timedelta(minutes=settings.BREAK_GLASS_NOTIFY_DUE_MINUTES)


def grant_alarms(grant: BreakGlassGrant, *, now: datetime, officers: int) -> list[AlarmCode]:
    """The alarms ``grant`` raises at ``now`` in a community with ``officers`` active compliance officers."""
    codes: list[AlarmCode] = []
    if grant.reviewed_at is None and grant.ends_at <= now - review_due():
        codes.append(AlarmCode.REVIEW_OVERDUE)
    if grant.notified_at is None and grant.created_at <= now - notice_due():
        codes.append(AlarmCode.NOT_NOTIFIED if officers else AlarmCode.NO_ONE_TO_NOTIFY)
    return codes


def alarmed(grants: QuerySet[BreakGlassGrant], *, now: datetime, alarm: bool = True) -> QuerySet[BreakGlassGrant]:
    """The grants of ``grants`` that raise an alarm at ``now`` (``alarm=False``: those that raise none)."""
    ended = Least(F("expires_at"), Coalesce(F("revoked_at"), F("expires_at")))
    raised = Q(reviewed_at__isnull=True, alarm_ends_at__lte=now - review_due()) | Q(
        notified_at__isnull=True, created_at__lte=now - notice_due()
    )
    annotated = grants.annotate(alarm_ends_at=ended)
    return annotated.filter(raised) if alarm else annotated.exclude(raised)
