"""A break-glass grant: who opened emergency access to what, why, until when, and its review."""

from __future__ import annotations

import uuid
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

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]
        indexes: ClassVar[list[models.Index]] = [models.Index(fields=["reviewed_at"], name="breakglass_review_queue")]

    def __str__(self) -> str:
        return f"break-glass {self.id}"
