"""Audit events, the signed checkpoints and purge statements over their chain, witness receipts, exports; never PHI.

The same tables live in every community's schema and in the public schema
(platform events: community lifecycle, audit purges).
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models.functions import Now

from core.exports import ExportStatus


class Outcome(models.TextChoices):
    """Whether the access was allowed."""

    ALLOW = "allow", "Allowed"
    DENY = "deny", "Denied"


class AuditEvent(models.Model):
    """One event; ``entry_hash`` = SHA-256(previous hash ‖ SHA-256(canonical JSON of the event))."""

    sequence = models.BigIntegerField(unique=True)
    occurred_at = models.DateTimeField()
    actor_id = models.CharField(max_length=64, blank=True)
    actor_roles = models.JSONField(default=list)
    action = models.CharField(max_length=64)
    resource_type = models.CharField(max_length=64, blank=True)
    resource_id = models.CharField(max_length=64, blank=True)
    participant_pseudonyms = ArrayField(models.CharField(max_length=32), default=list, blank=True)
    purpose = models.CharField(max_length=32, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    http_status = models.PositiveSmallIntegerField(default=0)
    decision_id = models.CharField(max_length=64, blank=True)
    policy_revision = models.CharField(max_length=200, blank=True)
    reasons = models.JSONField(default=list)
    request_id = models.CharField(max_length=64, blank=True)
    client_ip = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=256, blank=True)
    break_glass = models.BooleanField(default=False)
    previous_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)
    # Not hashed, the database's: which staged row this entry was chained from, when its request staged it
    # (checked against the staged row as it is consumed), and when it was chained (set by a trigger).
    staged_id = models.BigIntegerField(null=True, blank=True)
    staged_at = models.DateTimeField(null=True, blank=True)
    chained_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["sequence"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["occurred_at"], name="audit_event_time"),
            models.Index(fields=["actor_id", "sequence"], name="audit_event_actor"),
            models.Index(fields=["action", "sequence"], name="audit_event_action"),
            models.Index(fields=["resource_type", "resource_id"], name="audit_event_resource"),
            models.Index(fields=["staged_id"], name="audit_event_staged"),
            GinIndex(fields=["participant_pseudonyms"], name="audit_event_participants"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action}"


class PendingEvent(models.Model):
    """An event committed with its request and not chained yet; the sequencer moves it into the chain.

    ``entry`` holds the event's fields (never PHI) as JSON text; a trigger
    refuses any row that is not exactly what staging writes, and stamps
    ``staged_at`` with the database's clock (the staging transaction's time,
    whatever the writer sent). The table admits no UPDATE or TRUNCATE, and a
    DELETE only inside ``audit_consume_staged()``, which removes a row only
    once the chain holds an entry with the same content.
    """

    id = models.BigAutoField(primary_key=True)
    entry = models.TextField()
    staged_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"pending audit event {self.id}"


class Checkpoint(models.Model):
    """A signed statement that the chain had ``entry_hash`` at ``sequence`` at ``signed_at``.

    ``statement`` is the exact canonical JSON that was signed; the other columns
    repeat it for queries.
    """

    sequence = models.BigIntegerField(unique=True)
    entry_hash = models.CharField(max_length=64)
    signed_at = models.DateTimeField()
    key_id = models.CharField(max_length=64)
    statement = models.TextField()
    signature = models.CharField(max_length=128)

    class Meta:
        ordering: ClassVar[list[str]] = ["sequence"]

    def __str__(self) -> str:
        return f"checkpoint #{self.sequence}"


class PurgeStatement(models.Model):
    """A signed statement that a retention purge removed ``first``..``through``, cut at ``entry_hash``.

    ``statement`` is the exact canonical JSON that was signed (type
    ``audit-purge/v1``: log, community, range, cut hash, ``before``, the
    retention in force and ``signed_at``); the other columns repeat it.
    Verification requires one for exactly the cut of a log that does not start
    at #1. Append-only, like the checkpoints.
    """

    first = models.BigIntegerField()
    through = models.BigIntegerField(unique=True)
    entry_hash = models.CharField(max_length=64)
    before = models.DateTimeField()
    retention_days = models.PositiveIntegerField()
    signed_at = models.DateTimeField()
    key_id = models.CharField(max_length=64)
    statement = models.TextField()
    signature = models.CharField(max_length=128)

    class Meta:
        ordering: ClassVar[list[str]] = ["through"]

    def __str__(self) -> str:
        return f"purge #{self.first}..#{self.through}"


class WitnessKind(models.TextChoices):
    """What kind of signed statement the witness holds."""

    CHECKPOINT = "checkpoint", "Checkpoint"
    PURGE = "purge", "Purge statement"


class WitnessReceipt(models.Model):
    """The witness took the checkpoint (or purge statement) at ``sequence``: nothing to publish again.

    Only a hint for publishing: verification reads the witness itself, never
    this table, so a forged receipt hides nothing (the statement just stays
    unwitnessed, and the verifier says so).
    """

    kind = models.CharField(max_length=16, choices=WitnessKind.choices)
    sequence = models.BigIntegerField()
    witnessed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["kind", "sequence"], name="audit_witness_receipt_once")
        ]

    def __str__(self) -> str:
        return f"witnessed {self.kind} #{self.sequence}"


class ExportFormat(models.TextChoices):
    """Export file formats."""

    CSV = "csv", "CSV"
    JSONL = "jsonl", "JSON Lines"
    FHIR = "fhir", "FHIR R4 Bundle of AuditEvent"


class AuditExport(models.Model):
    """An export of the events in ``[since, until)``, built by a task, with its signed manifest."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requested_by = models.CharField(max_length=64)
    format = models.CharField(max_length=8, choices=ExportFormat.choices)
    since = models.DateTimeField()
    until = models.DateTimeField()
    status = models.CharField(max_length=8, choices=ExportStatus.choices, default=ExportStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    file_name = models.CharField(max_length=200, blank=True)
    manifest = models.JSONField(null=True, blank=True)
    error = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]

    def __str__(self) -> str:
        return f"audit export {self.id}"
