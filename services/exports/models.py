"""A de-identified export of one study's dataset, built by a task and sealed at rest."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models

from core.exports import ExportStatus  # one lifecycle for every kind of export


class ExportFormat(models.TextChoices):
    """File formats of a de-identified dataset."""

    CSV = "csv", "CSV"
    JSONL = "jsonl", "JSON Lines"


class DeidentifiedExport(models.Model):
    """A study's dataset under HIPAA Safe Harbor; the row itself carries no PHI (its error is a code)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    study = models.ForeignKey("studies.Study", on_delete=models.PROTECT, related_name="deidentified_exports")
    requested_by = models.CharField(max_length=64)
    format = models.CharField(max_length=8, choices=ExportFormat.choices)
    status = models.CharField(max_length=8, choices=ExportStatus.choices, default=ExportStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    file_name = models.CharField(max_length=200, blank=True)
    participant_count = models.PositiveIntegerField(null=True, blank=True)
    observation_count = models.PositiveIntegerField(null=True, blank=True)
    manifest = models.JSONField(null=True, blank=True)
    error = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "id"]

    def __str__(self) -> str:
        return f"de-identified export {self.id}"
