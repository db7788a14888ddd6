"""An observation about a participant (a lab value, a measurement); its date and note are PHI, encrypted."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models

from vault.fields import EncryptedDateField, EncryptedTextField


class Observation(models.Model):
    """One coded observation: ``code_system``/``code`` (LOINC, say), a number or a text, and its unit."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT, related_name="observations")
    code_system = models.CharField(max_length=200)
    code = models.CharField(max_length=64)
    display = models.CharField(max_length=200, blank=True)
    value_number = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    value_text = models.CharField(max_length=1000, blank=True)
    unit = models.CharField(max_length=32, blank=True)
    effective_date = EncryptedDateField(null=True)
    note = EncryptedTextField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at", "id"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["participant", "created_at"], name="observation_participant"),
        ]

    def __str__(self) -> str:
        return f"observation {self.id}"
