"""Studies over the API: created, read and updated with If-Match; IRB approval before active; who may create one."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from tests.support.clients import MemberClient
from tests.support.research import fields


def test_a_study_is_created_read_and_updated_with_if_match(pi: APIClient, study: dict[str, Any]) -> None:
    read = pi.get(f"/api/v1/studies/{study['id']}/")
    assert read.status_code == 200
    assert read.json()["protocol_number"] == "SLP-2026-01"
    tag = read["ETag"]

    missing = pi.patch(f"/api/v1/studies/{study['id']}/", {"title": "New"}, format="json")
    assert missing.status_code == 428
    assert missing.json()["code"] == "if_match_required"

    changed = pi.patch(f"/api/v1/studies/{study['id']}/", {"title": "Sleep, memory"}, format="json", HTTP_IF_MATCH=tag)
    assert changed.status_code == 200
    assert changed.json()["title"] == "Sleep, memory"

    stale = pi.patch(f"/api/v1/studies/{study['id']}/", {"title": "Lost update"}, format="json", HTTP_IF_MATCH=tag)
    assert stale.status_code == 409
    assert stale.json()["code"] == "edit_conflict"
    assert pi.get(f"/api/v1/studies/{study['id']}/").json()["title"] == "Sleep, memory"


def test_a_study_is_active_only_with_irb_approval_and_stays_closed(pi: APIClient) -> None:
    response = pi.post("/api/v1/studies/", {"title": "T", "protocol_number": "P-1", "status": "active"}, format="json")
    assert response.status_code == 400
    assert "status" in fields(response)

    draft = pi.post("/api/v1/studies/", {"title": "T", "protocol_number": "P-1"}, format="json")
    assert draft.json()["status"] == "draft"
    closed = pi.patch(
        f"/api/v1/studies/{draft.json()['id']}/", {"status": "closed"}, format="json", HTTP_IF_MATCH=draft["ETag"]
    )
    reopened = pi.patch(
        f"/api/v1/studies/{draft.json()['id']}/", {"status": "draft"}, format="json", HTTP_IF_MATCH=closed["ETag"]
    )
    assert reopened.status_code == 409
    assert reopened.json()["code"] == "study_closed"


def test_study_input_is_checked(pi: APIClient, study: dict[str, Any], member_client: MemberClient) -> None:
    outsider = member_client("coordinator", on_beta=True)[1]
    cases = [
        ({"title": "T", "protocol_number": "P-2", "owner": "me"}, 400, "owner"),
        ({"title": "T", "protocol_number": "bad number\x00"}, 400, "protocol_number"),
        ({"title": "T", "protocol_number": "P-3", "irb_approval_date": "2999-01-01"}, 400, "irb_approval_date"),
        ({"title": "T", "protocol_number": "P-4", "team": [str(outsider.pk)]}, 400, "team"),
        ({"title": "T", "protocol_number": "SLP-2026-01"}, 409, None),
    ]
    for body, status, field in cases:
        response = pi.post("/api/v1/studies/", body, format="json")
        assert response.status_code == status, (body, response.content)
        if field:
            assert field in fields(response)


def test_a_researcher_reads_studies_but_cannot_create_them(researcher: APIClient, study: dict[str, Any]) -> None:
    assert researcher.get("/api/v1/studies/").json()["results"][0]["id"] == study["id"]
    denied = researcher.post("/api/v1/studies/", {"title": "T", "protocol_number": "P-9"}, format="json")
    assert denied.status_code == 403
