"""The research API's test data: a participant's PHI as a coordinator enters it, a consent, a record of beta's."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from tests.factories import ParticipantFactory

# An active, IRB-approved study as a principal investigator creates it (POST /api/v1/studies/).
ACTIVE_STUDY = {
    "title": "Sleep and memory",
    "protocol_number": "SLP-2026-01",
    "irb_approval_number": "IRB-77",
    "irb_approval_date": "2026-01-15",
    "status": "active",
}
ADA = {
    "given_name": "Ada",
    "family_name": "Lovelace-Byron",
    "date_of_birth": "1950-12-10",
    "sex": "female",
    "mrn": "MRN-000123",
    "email": "ada@example.org",
    "phone": "+44 20 7946 0000",
    "street_address": "12 St James's Square",
    "city": "Westminster",
    "state": "NY",
    "postal_code": "10001",
}
PHI_VALUES = [value for key, value in ADA.items() if key != "sex"]


def fields(response: Any) -> set[str]:
    """The fields a 400 problem names."""
    return {error["field"] for error in response.json()["errors"]}


def consent(client: APIClient, participant: dict[str, Any], *scopes: str) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/participants/{participant['id']}/consents/",
        {"scopes": list(scopes), "form_version": "v3.1", "signed_at": "2026-02-01T10:00:00Z"},
        format="json",
    )
    assert response.status_code == 201, response.content
    return dict(response.json())


def beta_participant() -> tuple[str, str]:
    """A participant of beta called Grace, with no city, in a study titled "Beta": their id and the study's."""
    with schema_context("beta"):
        participant = ParticipantFactory.create(given_name="Grace", city=None, study__title="Beta")
    return str(participant.pk), str(participant.study_id)
