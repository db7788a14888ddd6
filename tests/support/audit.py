"""Recording events in tests, where a test's transaction never commits (so nothing chains on commit)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from security.audit.models import AuditEvent
from security.audit.sequencer import audit_chain
from security.audit.staging import audit_append


def recorded(**fields: Any) -> AuditEvent:
    """Stage one event in the current schema and chain it now; the chained event."""
    audit_append(**fields)
    audit_chain()
    event = AuditEvent.objects.order_by("-sequence").first()
    assert event is not None
    return event


def chained_events() -> QuerySet[AuditEvent]:
    """The current schema's events, after chaining what requests staged (their commit never came)."""
    audit_chain()
    return AuditEvent.objects.all()
