"""An observation about a participant (a lab value, a measurement).

Its free text (``display``, a text value, the note) and its date are PHI,
encrypted like a participant's fields (HIPAA 164.312(a)(2)(iv)). The code
system, code, number and unit stay in clear: the policy, the accounting and
the de-identified export read them, and the decision is written down in
docs/hipaa-mapping.md.
"""

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
    display = EncryptedTextField(null=True, default="")
    value_number = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    value_text = EncryptedTextField(null=True)  # a text value (up to 1,000 characters), None for a number
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
