"""A participant's consent: which uses of their data they agreed to, on which form, and whether withdrawn.

Withdrawal is a state, never a deletion: ``withdrawn_at`` is set once and the
record stays. A participant's *active scopes* are the scopes of consents not
withdrawn; the policy refuses PHI for a purpose outside them.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.contrib.postgres.fields import ArrayField
from django.db import models


class Scope(models.TextChoices):
    """What a participant may consent to (each is also a purpose of use a client can state)."""

    RESEARCH_USE = "research_use", "Use in research"
    CONTACT = "contact", "Being contacted"
    DATA_SHARING = "data_sharing", "Sharing data with other researchers"
    GENOMIC = "genomic", "Genomic analysis"


class Consent(models.Model):
    """One signed consent form. Carries no PHI."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    participant = models.ForeignKey("participants.Participant", on_delete=models.PROTECT, related_name="consents")
    scopes = ArrayField(models.CharField(max_length=32, choices=Scope.choices))
    form_version = models.CharField(max_length=64)
    # Whether the form is also a HIPAA authorization (45 CFR 164.508): reads for a purpose it covers,
    # while it is in force, are exempt from the accounting of disclosures (164.528(a)(1)(iv)).
    hipaa_authorization = models.BooleanField(default=False, db_default=False)
    # The flag alone exempts nothing: a compliance officer confirms the form is a valid authorization
    # (``consent_authorization_confirm``), at the database's time; it counts from then on.
    authorization_confirmed_at = models.DateTimeField(null=True, blank=True)
    authorization_confirmed_by = models.CharField(max_length=64, blank=True, db_default="")
    signed_at = models.DateTimeField()
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["signed_at", "id"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["participant", "withdrawn_at"], name="consent_active"),
        ]

    def __str__(self) -> str:
        return f"consent {self.id}"
