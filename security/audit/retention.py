"""Retention: events older than the retention period may be purged, and the purge is itself on record.

A purge cuts the oldest events of one log up to a sequence. Before deleting
it signs a checkpoint at the cut and a purge statement (:func:`purge_statement_record`:
``audit-purge/v1``, naming the range, the cut's hash, ``before`` and the
retention in force, stored append-only and published to the witness),
deletes through ``audit_purge_through()``, the table owner's function that
checks for itself that the cut is older than the retention (never less than
six years, by the database's clock) and that a checkpoint sits at it
(migration 0006: the service's role holds no DELETE on the log), and appends
an ``audit.purge`` event naming the cut. Decision records of the same age go
with them. A cut inside the retention period is refused here too, with a
clear message, before the database would. The verifiers accept a log that
does not start at #1 only with a signed purge statement for exactly that cut,
made outside the retention it names; the ``audit.purge`` event is a record
for people, not evidence (anyone who can insert a row can forge one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from core.errors import Conflict
from policy.models import DecisionRecord
from security.audit.checkpoints import checkpoint_at, current_log, sign_document
from security.audit.errors import AuditErrorCode
from security.audit.hashing import format_time
from security.audit.models import AuditEvent, PurgeStatement
from security.audit.offline import PURGE_TYPE
from security.audit.sequencer import LOCK, audit_chain
from security.audit.staging import audit_append
from security.audit.witness import witness_after_commit


@dataclass(frozen=True)
class Purge:
    """What a purge removed: events through ``through`` (0: none) and decision records."""

    through: int
    events: int
    decisions: int


def retention_limit(now: datetime | None = None) -> datetime:
    """The oldest moment that must still be kept."""
    return (now or timezone.now()) - timedelta(days=settings.AUDIT_RETENTION_DAYS)


def purge_statement_record(*, through: int, before: datetime) -> PurgeStatement:
    """Sign and store the statement that events up to ``through`` (cut before ``before``) are purged; witness it.

    Called inside the purge's transaction, with the chain's lock held, before
    the DELETE: the statement names the cut's entry hash, which the chain's
    new first entry links to, and the retention in force now. It reaches the
    witness once the purge commits.
    """
    existing = PurgeStatement.objects.filter(through=through).first()
    if existing is not None:
        return existing
    first = AuditEvent.objects.aggregate(value=Min("sequence"))["value"] or 1
    cut_hash = AuditEvent.objects.values_list("entry_hash", flat=True).get(sequence=through)
    signed_at = timezone.now()
    log = current_log()
    document = {
        "type": PURGE_TYPE,
        "log": log,
        "community": log,
        "first": first,
        "through": through,
        "entry_hash": cut_hash,
        "before": format_time(before),
        "retention_days": settings.AUDIT_RETENTION_DAYS,
        "signed_at": format_time(signed_at),
    }
    signed = sign_document(document)
    statement = PurgeStatement.objects.create(
        first=first,
        through=through,
        entry_hash=cut_hash,
        before=before,
        retention_days=settings.AUDIT_RETENTION_DAYS,
        signed_at=signed_at,
        key_id=signed.key_id,
        statement=signed.text,
        signature=signed.signature,
    )
    witness_after_commit()
    return statement


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
        purge_statement_record(through=cut, before=before)
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
