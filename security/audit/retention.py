"""Retention: events older than the retention period may be purged, and the purge is itself on record.

A purge cuts the oldest events of one log up to a sequence. Before deleting
it signs a checkpoint at the cut (the new start of the chain is then vouched
for), deletes through ``audit_purge_through()``, the table owner's function
that checks for itself that the cut is older than the retention (never less
than six years, by the database's clock) and that a checkpoint sits at it
(migration 0006: the service's role holds no DELETE on the log), and appends
an ``audit.purge`` event naming the cut. Decision records of the same age go
with them. A cut inside the retention period is refused here too, with a
clear message, before the database would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from core.errors import Conflict
from policy.models import DecisionRecord
from security.audit.checkpoints import checkpoint_at
from security.audit.errors import AuditErrorCode
from security.audit.hashing import format_time
from security.audit.models import AuditEvent
from security.audit.sequencer import LOCK, audit_chain
from security.audit.staging import audit_append


@dataclass(frozen=True)
class Purge:
    """What a purge removed: events through ``through`` (0: none) and decision records."""

    through: int
    events: int
    decisions: int


def retention_limit(now: datetime | None = None) -> datetime:
    """The oldest moment that must still be kept."""
    return (now or timezone.now()) - timedelta(days=settings.AUDIT_RETENTION_DAYS)


def audit_purge(*, before: datetime, actor: str) -> Purge:
    """Purge the current schema's events (and decision records) older than ``before``.

    Raises:
        Conflict: ``before`` lies inside the retention period.
    """
    limit = retention_limit()
    if before > limit:
        raise Conflict(
            f"{format_time(before)} is inside the {settings.AUDIT_RETENTION_DAYS}-day retention period "
            f"(nothing after {format_time(limit)} may be purged)",
            code=AuditErrorCode.INSIDE_RETENTION,
        )
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(LOCK)
        audit_chain()
        cut = AuditEvent.objects.filter(occurred_at__lt=before).aggregate(value=Max("sequence"))["value"]
        if cut is None:
            return Purge(0, 0, 0)
        checkpoint_at(cut)
        with connection.cursor() as cursor:
            cursor.execute("SELECT audit_purge_through(%s, %s)", [cut, settings.AUDIT_RETENTION_DAYS])
            events = int(cursor.fetchone()[0])
        decisions, _ = DecisionRecord.objects.filter(created_at__lt=before).delete()
        audit_append(
            actor_id=actor,
            action="audit.purge",
            resource_type="audit",
            resource_id=str(cut),
            outcome="allow",
            reasons=["retention_expired", f"before {format_time(before)}", f"{events} events"],
        )
    return Purge(cut, events, decisions)
