"""A research study of one community, stored in that community's schema."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models


class StudyStatus(models.TextChoices):
    """Lifecycle of a study."""

    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    CLOSED = "closed", "Closed"


class Study(models.Model):
    """A protocol under an IRB approval. Carries no PHI."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=300)
    protocol_number = models.CharField(max_length=64, unique=True)
    irb_approval_number = models.CharField(max_length=64, blank=True)
    irb_approval_date = models.DateField(null=True, blank=True)
    # A waiver of authorization by an IRB or privacy board (45 CFR 164.512(i)): reads under it are listed
    # in the accounting of disclosures, with the waiver named in the purpose statement.
    irb_waiver_number = models.CharField(max_length=64, blank=True, db_default="")
    irb_waiver_date = models.DateField(null=True, blank=True)
    # When the waiver number was put on record (the database's time): the waiver names no access before it.
    irb_waiver_recorded_at = models.DateTimeField(null=True, blank=True, editable=False)
    # What an accounting of disclosures says of research under the waiver involving 50 or more people
    # (45 CFR 164.528(b)(4)): the purpose and selection criteria, the type of PHI, and whom to contact.
    research_purpose = models.TextField(blank=True, db_default="")
    phi_types = models.TextField(blank=True, db_default="")
    sponsor_name = models.CharField(max_length=200, blank=True, db_default="")
    sponsor_address = models.CharField(max_length=500, blank=True, db_default="")
    sponsor_phone = models.CharField(max_length=64, blank=True, db_default="")
    researcher_name = models.CharField(max_length=200, blank=True, db_default="")
    researcher_address = models.CharField(max_length=500, blank=True, db_default="")
    researcher_phone = models.CharField(max_length=64, blank=True, db_default="")
    status = models.CharField(max_length=16, choices=StudyStatus.choices, default=StudyStatus.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "studies"
        ordering: ClassVar[list[str]] = ["protocol_number"]

    def __str__(self) -> str:
        return self.protocol_number


class StudyTeamMember(models.Model):
    """A community member assigned to a study's team (the membership lives in the public schema)."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="team")
    user_id = models.UUIDField()
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["study", "user_id"], name="study_team_member_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} on {self.study_id}"
