"""How participants leave and enter the API: PHI fields redacted as the decision says; strict input.

An MRN or email to search by comes in a JSON body (:class:`ParticipantSearch`);
the list's query string refuses them (:class:`ParticipantQuery`), since a URL
ends up in access logs.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.errors import BadRequest
from core.pagination import CursorField, PageSizeField
from core.serializers import StrictQuery, StrictSerializer
from policy.obligations import RedactingSerializerMixin
from services.common import CleanCharField, PastDateField
from services.participants.errors import ParticipantErrorCode

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


# Identifiers that are searched in a request body (POST /api/v1/participants/search/), never in a URL.
SEARCH_TERMS = ("mrn", "email")
SEARCH_ROUTE = "/api/v1/participants/search/"


class ParticipantQuery(StrictQuery):
    """Filters of the participant list; unknown parameters are refused, identifiers with a pointer to the search."""

    study = serializers.UUIDField(required=False)
    cursor = CursorField()
    limit = PageSizeField()

    def to_internal_value(self, data: Any) -> Any:
        """Refuse an MRN or email in the query string before anything else; the value is neither echoed nor kept.

        Raises:
            BadRequest: ``?mrn=`` or ``?email=`` (``search_in_url``), naming the parameter only.
        """
        named = [term for term in SEARCH_TERMS if isinstance(data, dict) and term in data]
        if named:
            raise BadRequest(
                f"Identifiers never go in a URL: search by {' or '.join(named)} with POST {SEARCH_ROUTE}"
                " and a JSON body instead.",
                code=ParticipantErrorCode.SEARCH_IN_URL,
            )
        return super().to_internal_value(data)


class ParticipantSearch(StrictSerializer):
    """An exact search by MRN or by email (exactly one), with the list's study filter and paging, as a JSON body.

    The identifier stays out of the URL, so out of every access log; ``cursor``
    is what the previous page's ``next`` said.
    """

    mrn = serializers.RegexField(MRN_PATTERN, max_length=64, required=False)
    email = serializers.EmailField(max_length=254, required=False)
    study = serializers.UUIDField(required=False)
    cursor = CursorField()
    limit = PageSizeField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Exactly one identifier to search by.

        Raises:
            ValidationError: neither ``mrn`` nor ``email``, or both.
        """
        if ("mrn" in attrs) == ("email" in attrs):
            raise serializers.ValidationError(
                "Send exactly one of mrn and email.", code=ParticipantErrorCode.SEARCH_TERM_REQUIRED
            )
        if "email" in attrs:
            attrs["email"] = attrs["email"].strip()
        return attrs

    def terms(self) -> dict[str, Any]:
        """What the list selector filters by: the study and the one identifier."""
        return {name: self.validated_data.get(name) for name in ("study", *SEARCH_TERMS)}
