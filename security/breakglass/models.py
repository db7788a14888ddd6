"""A break-glass grant: who opened emergency access to what, why, until when, who ended it early, and its review.

A grant whose ``notified_at`` is empty is the notification outbox: the row is
written in the transaction that opens the grant, and the mail to compliance
officers is owed until a task sets ``notified_at`` (security/breakglass/tasks.py).

An alarm raised on a grant (overdue review, notice not sent) is a
:class:`BreakGlassAlarm` row, once per grant and code: the record that it was
raised and mailed (security/breakglass/alarms.py says when one stands).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from django.db import models

from vault.fields import EncryptedTextField


class Scope(models.TextChoices):
    """What a grant opens."""

    PARTICIPANT = "participant", "One participant"
    STUDY = "study", "One study"


class BreakGlassGrant(models.Model):
    """One emergency access. The reason may describe a person's condition, so it is encrypted."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user_id = models.UUIDField(db_index=True)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    scope_id = models.CharField(max_length=64)
    reason = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    notified_at = models.DateTimeField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.UUIDField(null=True, blank=True)
    review_comment = models.CharField(max_length=2000, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.UUIDField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["reviewed_at"], name="breakglass_review_queue"),
            # The outbox the notification sweep reads: grants whose mail is still owed.
            models.Index(
                fields=["created_at"], name="breakglass_unnotified", condition=models.Q(notified_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"break-glass {self.id}"

    @property
    def ends_at(self) -> datetime:
        """When the grant stops opening anything: its expiry, or the moment it was revoked if that came first."""
        if self.revoked_at is not None and self.revoked_at < self.expires_at:
            return self.revoked_at
        return self.expires_at

    def is_active(self, now: datetime) -> bool:
        """Whether the grant still opens what it names at ``now`` (neither expired nor revoked)."""
        return self.ends_at > now


class AlarmCode(models.TextChoices):
    """Why a grant needs a person's attention (stable codes: the queue, the log line and the mail give them)."""

    REVIEW_OVERDUE = "review_overdue", "Ended more than the review period ago and not reviewed"
    NOT_NOTIFIED = "not_notified", "Compliance officers not told (the mail keeps failing)"
    NO_ONE_TO_NOTIFY = "no_one_to_notify", "Compliance officers not told: the community has none"


class BreakGlassAlarm(models.Model):
    """An alarm raised on a grant, once per grant and code: when it was raised, and when its digest was mailed.

    The row is the record that a person was told: the sweep mails an alarm
    whose ``mailed_at`` is empty and then sets it, so each alarm is mailed once.
    An alarm that stops standing (the grant was reviewed, the mail went out)
    stays here as history.
    """

    id = models.BigAutoField(primary_key=True)
    grant = models.ForeignKey(BreakGlassGrant, on_delete=models.PROTECT, related_name="alarms")
    code = models.CharField(max_length=32, choices=AlarmCode.choices)
    raised_at = models.DateTimeField()
    mailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["raised_at", "id"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["grant", "code"], name="breakglass_alarm_once")
        ]

    def __str__(self) -> str:
        return f"break-glass alarm {self.code} on {self.grant_id}"
