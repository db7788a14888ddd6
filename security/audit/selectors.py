"""Queries over the audit log, and handing an export (audit or de-identified) to a worker."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Model, QuerySet
from django.utils import timezone
from django_tenants.utils import schema_context

from gateway.tasks import enqueue_for_caller
from security.audit.chain import audit_chain
from security.audit.models import AuditEvent, ExportStatus


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


QUEUE_UNAVAILABLE = "queue_unavailable"  # a failed export's error when no broker took its task


def export_enqueue(export: Model, *, task: Any, claims: Any, community: Any) -> None:
    """Queue ``task`` for ``export`` with who asked and how they signed in; mark it failed if no broker takes it.

    Serves both kinds of export (audit and de-identified): each has ``status``,
    ``error`` and ``finished_at``, and a task taking ``export_id``.
    """

    def refused() -> None:
        with schema_context(community.schema_name):
            type(export)._default_manager.filter(pk=export.pk).update(
                status=ExportStatus.FAILED, error=QUEUE_UNAVAILABLE, finished_at=timezone.now()
            )

    enqueue_for_caller(
        task,
        claims=claims,
        community=community,
        on_refused=refused,
        export_id=str(export.pk),
        resource_id=str(export.pk),
    )
