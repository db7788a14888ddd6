"""Queries over the audit log (staged events chained first, so a query never sees a gap)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from security.audit.models import AuditEvent
from security.audit.sequencer import audit_chain


def audit_events(
    *,
    actor: str | None = None,
    action: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    participant: str | None = None,
    outcome: str | None = None,
    break_glass: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Events matching every given filter (time range ``[since, until)``), staged ones chained first."""
    audit_chain()
    events = AuditEvent.objects.all()
    exact = {
        "actor_id": actor,
        "action": action,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "outcome": outcome,
        "break_glass": break_glass,
        "occurred_at__gte": since,
        "occurred_at__lt": until,
    }
    events = events.filter(**{name: value for name, value in exact.items() if value is not None})
    if participant is not None:
        events = events.filter(participant_pseudonyms__contains=[participant])
    return events
