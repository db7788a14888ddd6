"""A study participant. Every PHI field is encrypted under the community's keys.

The pseudonym is random and derived from nothing about the person (HIPAA
164.514(c)); MRN and email are searchable by exact value through blind indexes.
The active consent scopes are a column the database keeps in step with the
consents, so a page narrowed by consent is one plain query.
"""

from __future__ import annotations

import secrets
import uuid
from typing import ClassVar

from django.contrib.postgres.fields import ArrayField
from django.db import models

from vault.fields import BlindIndexField, EncryptedDateField, EncryptedTextField

PSEUDONYM_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_pseudonym() -> str:
    """``P-`` and ten random characters (about 50 bits), from no attribute of the person."""
    return "P-" + "".join(secrets.choice(PSEUDONYM_ALPHABET) for _ in range(10))


class Participant(models.Model):
    """A person enrolled in a study of this community."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    study = models.ForeignKey("studies.Study", on_delete=models.PROTECT, related_name="participants")
    pseudonym = models.CharField(max_length=16, unique=True, default=new_pseudonym, editable=False)

    given_name = EncryptedTextField(null=True)
    family_name = EncryptedTextField(null=True)
    date_of_birth = EncryptedDateField(null=True)
    sex = EncryptedTextField(null=True)
    mrn = EncryptedTextField(null=True)
    email = EncryptedTextField(null=True)
    phone = EncryptedTextField(null=True)
    street_address = EncryptedTextField(null=True)
    city = EncryptedTextField(null=True)
    state = EncryptedTextField(null=True)
    postal_code = EncryptedTextField(null=True)

    # The scopes of the participant's consents that are not withdrawn, sorted: kept by the
    # database itself (migration 0003's triggers), whatever the application writes here.
    consent_scopes = ArrayField(models.CharField(max_length=32), default=list, editable=False)

    mrn_index = BlindIndexField(source="mrn", normalizer="identifier")
    email_index = BlindIndexField(source="email", normalizer="email")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at", "id"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["created_at", "id"], name="participant_cursor"),  # cursor pages
            models.Index(fields=["study", "created_at", "id"], name="participant_study_cursor"),
        ]

    def __str__(self) -> str:
        return self.pseudonym
