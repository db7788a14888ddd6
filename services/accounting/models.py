"""The accounting workflow of 45 CFR 164.528, stored in each community's schema. Carries no participant PHI.

- :class:`AccountingRequest`: an individual's request, with the 60-day clock
  and its one extension of at most 30 days (164.528(c)).
- :class:`ProvidedAccounting`: the copy of each accounting provided, as the
  exact bytes given out, with their SHA-256 and who is responsible (164.528(d)).
- :class:`Suspension`: a health oversight agency's or law enforcement
  official's request to suspend the accounting of disclosures to them (164.528(a)(2)).
- :class:`RecordedDisclosure`: a disclosure made off the platform, recorded by an officer.

Copies, suspensions and recorded disclosures are append-only: the database
refuses UPDATE and DELETE (``audit_refuse_change``, migration 0002).
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models


class RequestStatus(models.TextChoices):
    """Where a request stands."""

    OPEN = "open", "Open"
    PROVIDED = "provided", "Provided"


class AccountingRequest(models.Model):
    """An individual's request for an accounting of the disclosures of their PHI."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT, related_name="+")
    received_at = models.DateTimeField()
    requester = models.CharField(max_length=200)
    period_start = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField()
    extended_due_at = models.DateTimeField(null=True, blank=True)
    extension_reason = models.TextField(blank=True)
    individual_told_on = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=RequestStatus.choices, default=RequestStatus.OPEN)
    opened_by = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["received_at", "id"]

    def __str__(self) -> str:
        return f"accounting request {self.id}"


class ProvidedAccounting(models.Model):
    """The accounting as provided for a request: the exact canonical JSON given out, and its SHA-256."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    request = models.OneToOneField(AccountingRequest, on_delete=models.PROTECT, related_name="copy")
    provided_at = models.DateTimeField()
    provided_by = models.CharField(max_length=64)
    responsible = models.CharField(max_length=300)
    content = models.TextField()
    sha256 = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"accounting provided {self.id}"


class SuspensionForm(models.TextChoices):
    """How the agency or official asked."""

    WRITTEN = "written", "Written statement"
    ORAL = "oral", "Oral statement"


class Suspension(models.Model):
    """While in force, disclosures to ``agency`` are withheld from the accountings provided (164.528(a)(2))."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agency = models.CharField(max_length=200)
    official = models.CharField(max_length=200)
    form = models.CharField(max_length=8, choices=SuspensionForm.choices)
    statement = models.TextField()
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    recorded_by = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["starts_at", "id"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.CheckConstraint(condition=models.Q(ends_at__gt=models.F("starts_at")), name="suspension_ends_later"),
        ]

    def __str__(self) -> str:
        return f"suspension {self.id}"


class RecordedDisclosure(models.Model):
    """A disclosure made off the platform (a public-health report, a subpoena, a breach), recorded by an officer."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT, related_name="+")
    disclosed_at = models.DateTimeField()
    recipient_name = models.CharField(max_length=200)
    recipient_organisation = models.CharField(max_length=200)
    recipient_address = models.CharField(max_length=500, blank=True)
    description = models.TextField()
    purpose_statement = models.TextField()
    recorded_by = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["disclosed_at", "id"]

    def __str__(self) -> str:
        return f"recorded disclosure {self.id}"
