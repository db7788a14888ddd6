"""A break-glass grant: who opened emergency access to what, why, until when, who ended it early, and its review.

A grant whose ``notified_at`` is empty is the notification outbox: the row is
written in the transaction that opens the grant, and the mail to compliance
officers is owed until a task sets ``notified_at`` (security/breakglass/tasks.py).
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
