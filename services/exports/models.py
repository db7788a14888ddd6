"""A de-identified export of one study's dataset, built by a task and sealed at rest; and its determination.

An export names who receives it and why (the requester says so in the
request), and its file may be downloaded only once a compliance officer has
signed off the determination that, to the officer's knowledge, the file
cannot identify anyone (45 CFR 164.514(b)(2)(ii)).
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models

from core.exports import ExportStatus  # one lifecycle for every kind of export

RECIPIENT_NAME_LENGTH = 200
RECIPIENT_ADDRESS_LENGTH = 500
PURPOSE_LENGTH = 1000
STATEMENT_LENGTH = 2000


class ExportFormat(models.TextChoices):
    """File formats of a de-identified dataset."""

    CSV = "csv", "CSV"
    JSONL = "jsonl", "JSON Lines"


class DeidentifiedExport(models.Model):
    """A study's de-identified dataset; the row itself carries no PHI (its error is a code).

    ``recipient_*`` and ``purpose`` are what the requester stated: who will
    receive the file and why. They name the recipient, not a participant.
    """

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
    recipient_name = models.CharField(max_length=RECIPIENT_NAME_LENGTH, blank=True)
    recipient_organisation = models.CharField(max_length=RECIPIENT_NAME_LENGTH, blank=True)
    recipient_address = models.CharField(max_length=RECIPIENT_ADDRESS_LENGTH, blank=True)
    purpose = models.CharField(max_length=PURPOSE_LENGTH, blank=True)
    # Where the build that won keeps its sealed file: every build attempt writes a key of its own.
    storage_key = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "id"]

    def __str__(self) -> str:
        return f"de-identified export {self.id}"


class ExportDetermination(models.Model):
    """A compliance officer's sign-off that a ready export's file identifies nobody, to their knowledge.

    It covers one manifest exactly (``manifest_sha256``, the SHA-256 of the
    manifest's canonical JSON, which names the file's own SHA-256), and is
    made once: a new determination needs a new export.
    """

    export = models.OneToOneField(
        DeidentifiedExport, on_delete=models.PROTECT, primary_key=True, related_name="determination"
    )
    determined_by = models.CharField(max_length=64)
    determined_at = models.DateTimeField()
    statement = models.CharField(max_length=STATEMENT_LENGTH)
    conditions = models.CharField(max_length=STATEMENT_LENGTH, blank=True)
    manifest_sha256 = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"determination of export {self.export_id}"
