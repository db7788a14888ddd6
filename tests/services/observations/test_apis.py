"""Observations over the API: recorded and read back under consent, redacted for researchers, bad input refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.support.research import consent, fields


def test_observations_are_recorded_and_read_back_with_their_phi_under_consent(
    pi: APIClient, coordinator: APIClient, researcher: APIClient, ada: dict[str, Any]
) -> None:
    consent(coordinator, ada, "research_use")
    body = {
        "participant": ada["id"],
        "code_system": "http://loinc.org",
        "code": "8867-4",
        "display": "Heart rate",
        "value": 72,
        "unit": "/min",
        "effective_date": "2026-03-02",
        "note": "Measured after Ada walked in",
    }
    created = coordinator.post("/api/v1/observations/", body, format="json")
    assert created.status_code == 201, created.content
    # A write outside the PHI list echoes no PHI: the free text and the date are read back, not echoed.
    assert (created.json()["note"], created.json()["effective_date"], created.json()["value"]) == (None, None, 72)
    text = coordinator.post("/api/v1/observations/", {**body, "value": "negative", "code": "94500-6"}, format="json")
    assert text.json()["value"] is None
    assert pi.get(f"/api/v1/observations/{text.json()['id']}/").json()["value"] == "negative"

    read = pi.get(f"/api/v1/observations/{created.json()['id']}/")
    assert read.status_code == 200
    assert (read.json()["value"], read.json()["effective_date"], read.json()["note"]) == (
        72,
        "2026-03-02",
        body["note"],
    )
    listed = pi.get("/api/v1/observations/", {"participant": ada["id"]}).json()["results"]
    assert len(listed) == 2
    redacted = researcher.get(f"/api/v1/observations/{created.json()['id']}/").json()
    assert (redacted["value"], redacted["effective_date"], redacted["note"]) == (72, None, None)
    assert (redacted["display"], redacted["created_at"]) == (None, None)
    assert researcher.get(f"/api/v1/observations/{text.json()['id']}/").json()["value"] is None


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"note": "x" * 10_001}, 400, "note"),
        ({"value": True}, 400, "value"),
        ({"effective_date": "2999-01-01"}, 400, "effective_date"),
        ({"code": "8867 4; DROP"}, 400, "code"),
        ({"participant": str(uuid.uuid4())}, 400, "participant"),
    ],
)
def test_bad_observations_are_refused(
    change: dict[str, Any], status: int, field: str, coordinator: APIClient, ada: dict[str, Any]
) -> None:
    body = {"participant": ada["id"], "code_system": "http://loinc.org", "code": "8867-4", "value": 1, **change}
    response = coordinator.post("/api/v1/observations/", body, format="json")
    assert response.status_code == status
    assert field in fields(response)


def test_a_ten_megabyte_note_is_413(coordinator: APIClient, ada: dict[str, Any]) -> None:
    body = {"participant": ada["id"], "code_system": "http://loinc.org", "code": "8867-4", "note": "x" * 10_000_000}
    response = coordinator.post("/api/v1/observations/", body, format="json")
    assert response.status_code == 413
