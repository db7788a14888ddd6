"""How participants leave and enter the API: PHI fields redacted as the decision says; strict input."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.serializers import StrictSerializer
from policy.obligations import RedactingSerializerMixin
from services.common import CleanCharField, PastDateField

SEXES = ("female", "male", "intersex", "unknown")
# Printable ASCII, no space at either end: an MRN is an identifier, not prose.
MRN_PATTERN = r"^[!-~](?:[ -~]{0,62}[!-~])?$"
PHONE_PATTERN = r"^\+?[0-9][0-9 ().\-]{3,30}$"
POSTAL_CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 \-]{1,14}$"


class ScopeListField(serializers.ListField):
    """The participant's consent scopes, read-only: plain strings already, served as they are."""

    def to_representation(self, data: Any) -> list[str]:
        """The scopes as a list (no per-item field to run)."""
        return [str(scope) for scope in data]


class ParticipantSerializer(RedactingSerializerMixin):
    """A participant; the fields the policy's redaction obligation names come out as ``null``."""

    id = serializers.UUIDField(read_only=True)
    study = serializers.UUIDField(source="study_id", read_only=True)
    pseudonym = serializers.CharField(read_only=True)
    given_name = serializers.CharField(read_only=True)
    family_name = serializers.CharField(read_only=True)
    date_of_birth = serializers.DateField(read_only=True)
    sex = serializers.CharField(read_only=True)
    mrn = serializers.CharField(read_only=True)
    email = serializers.CharField(read_only=True)
    phone = serializers.CharField(read_only=True)
    street_address = serializers.CharField(read_only=True)
    city = serializers.CharField(read_only=True)
    state = serializers.CharField(read_only=True)
    postal_code = serializers.CharField(read_only=True)
    consent_scopes = ScopeListField(child=serializers.CharField(), read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class ParticipantInput(StrictSerializer):
    """What a client may set. Names, birth date and study are required on enrolment."""

    study = serializers.UUIDField()
    given_name = CleanCharField(min_length=1, max_length=200)
    family_name = CleanCharField(min_length=1, max_length=200)
    date_of_birth = PastDateField(min_year=1880)
    sex = serializers.ChoiceField(choices=SEXES, required=False, allow_null=True)
    mrn = serializers.RegexField(MRN_PATTERN, max_length=64, required=False, allow_null=True)
    email = serializers.EmailField(max_length=254, required=False, allow_null=True)
    phone = serializers.RegexField(PHONE_PATTERN, max_length=32, required=False, allow_null=True)
    street_address = CleanCharField(max_length=300, required=False, allow_null=True)
    city = CleanCharField(max_length=100, required=False, allow_null=True)
    state = CleanCharField(min_length=2, max_length=64, required=False, allow_null=True)
    postal_code = serializers.RegexField(POSTAL_CODE_PATTERN, max_length=16, required=False, allow_null=True)

    def validate_email(self, value: Any) -> Any:
        """Stored as given, compared case-insensitively by its blind index."""
        return value.strip() if isinstance(value, str) else value


class ParticipantQuery(StrictSerializer):
    """Filters of the participant list; unknown parameters are refused."""

    study = serializers.UUIDField(required=False)
    mrn = serializers.RegexField(MRN_PATTERN, max_length=64, required=False)
    cursor = serializers.CharField(max_length=200, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=200, required=False)
