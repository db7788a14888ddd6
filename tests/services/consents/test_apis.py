"""Consents over the API: PHI is served under a covering consent, refused with the reason once it is withdrawn."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from tests.support.research import ADA, consent


def test_phi_is_served_under_a_covering_consent_and_refused_with_the_reason_after_withdrawal(
    pi: APIClient, coordinator: APIClient, ada: dict[str, Any]
) -> None:
    before = pi.get(f"/api/v1/participants/{ada['id']}/")
    assert before.status_code == 403
    assert before.json()["code"] == "consent_not_covering_purpose"

    granted = consent(coordinator, ada, "research_use", "contact")
    read = pi.get(f"/api/v1/participants/{ada['id']}/")
    assert read.status_code == 200
    assert {key: read.json()[key] for key in ADA} == ADA
    assert read.json()["consent_scopes"] == ["contact", "research_use"]
    assert read["Cache-Control"] == "no-store"
    assert [item["id"] for item in pi.get("/api/v1/participants/").json()["results"]] == [ada["id"]]

    withdrawn = coordinator.post(
        f"/api/v1/participants/{ada['id']}/consents/{granted['id']}/withdraw/", {}, format="json"
    )
    assert withdrawn.status_code == 200
    assert withdrawn.json()["withdrawn_at"] is not None
    refused = pi.get(f"/api/v1/participants/{ada['id']}/")
    assert refused.status_code == 403
    assert refused.json()["code"] == "consent_not_covering_purpose"
    assert "Ada" not in refused.content.decode()
    assert pi.get("/api/v1/participants/").json()["results"] == []
    again = coordinator.post(f"/api/v1/participants/{ada['id']}/consents/{granted['id']}/withdraw/", {}, format="json")
    assert again.status_code == 409
    history = coordinator.get(f"/api/v1/participants/{ada['id']}/consents/").json()["results"]
    assert [item["id"] for item in history] == [granted["id"]], "withdrawal keeps the record"


def test_a_withdrawn_scope_only_blocks_that_purpose(pi: APIClient, coordinator: APIClient, ada: dict[str, Any]) -> None:
    research = consent(coordinator, ada, "research_use")
    consent(coordinator, ada, "contact")
    coordinator.post(f"/api/v1/participants/{ada['id']}/consents/{research['id']}/withdraw/", {}, format="json")

    assert pi.get(f"/api/v1/participants/{ada['id']}/").status_code == 403
    assert pi.get(f"/api/v1/participants/{ada['id']}/", HTTP_X_PURPOSE_OF_USE="contact").status_code == 200
