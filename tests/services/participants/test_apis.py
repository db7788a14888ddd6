"""Participants over the API: redacted views, the blind-indexed MRN search, paging, input checks, PHI encrypted."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from services.participants.models import Participant
from tests.support.audit import chained_events
from tests.support.research import ADA, PHI_VALUES, consent, fields


def test_a_researcher_gets_the_redacted_view_and_cannot_search_by_mrn(
    researcher: APIClient, coordinator: APIClient, ada: dict[str, Any]
) -> None:
    consent(coordinator, ada, "research_use")
    read = researcher.get(f"/api/v1/participants/{ada['id']}/")
    assert read.status_code == 200
    assert all(read.json()[key] is None for key in ADA)
    assert read.json()["pseudonym"] == ada["pseudonym"]
    search = researcher.get("/api/v1/participants/", {"mrn": ADA["mrn"]})
    assert search.status_code == 400
    assert search.json()["code"] == "filter_not_allowed"


def test_mrn_search_is_exact_through_the_blind_index(
    pi: APIClient, coordinator: APIClient, ada: dict[str, Any], study: dict[str, Any]
) -> None:
    other = coordinator.post(
        "/api/v1/participants/", {**ADA, "study": study["id"], "mrn": "MRN-000124"}, format="json"
    ).json()
    consent(coordinator, ada, "research_use")
    consent(coordinator, other, "research_use")

    found = pi.get("/api/v1/participants/", {"mrn": "MRN-000123"}).json()["results"]
    assert [item["id"] for item in found] == [ada["id"]]
    assert pi.get("/api/v1/participants/", {"mrn": "MRN-00012"}).json()["results"] == []
    assert len(pi.get("/api/v1/participants/", {"study": study["id"]}).json()["results"]) == 2
    duplicate = coordinator.post("/api/v1/participants/", {**ADA, "study": study["id"]}, format="json")
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "duplicate_mrn"


def test_participant_lists_page_with_a_cursor(pi: APIClient, coordinator: APIClient, study: dict[str, Any]) -> None:
    created = []
    for n in range(5):
        body = {**ADA, "study": study["id"], "mrn": f"MRN-{n}"}
        participant = coordinator.post("/api/v1/participants/", body, format="json").json()
        consent(coordinator, participant, "research_use")
        created.append(participant["id"])
    first = pi.get("/api/v1/participants/", {"limit": 2}).json()
    assert [item["id"] for item in first["results"]] == created[:2]
    rest: list[str] = []
    link = first["next"]
    while link:
        page = pi.get(link).json()
        rest += [item["id"] for item in page["results"]]
        link = page["next"]
    assert rest == created[2:]


def test_a_list_page_costs_the_same_queries_for_two_rows_or_six(
    pi: APIClient, coordinator: APIClient, study: dict[str, Any]
) -> None:
    def enrol(n: int) -> dict[str, Any]:
        participant = coordinator.post(
            "/api/v1/participants/", {**ADA, "study": study["id"], "mrn": f"MRN-Q{n}"}, format="json"
        ).json()
        consent(coordinator, participant, "research_use", "genomic")
        return dict(participant)

    counts: list[int] = []
    for total in (2, 6):
        while len(pi.get("/api/v1/participants/").json()["results"]) < total:
            enrol(total * 10 + len(counts) + len(pi.get("/api/v1/participants/").json()["results"]))
        with CaptureQueriesContext(connection) as queries:
            page = pi.get("/api/v1/participants/").json()["results"]
        counts.append(len(queries.captured_queries))
    assert counts[0] == counts[1]
    detail = pi.get(f"/api/v1/participants/{page[0]['id']}/").json()
    assert page[0]["consent_scopes"] == detail["consent_scopes"] == ["genomic", "research_use"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"date_of_birth": "2999-01-01"}, "date_of_birth"),
        ({"mrn": "MRN\x1b[31m"}, "mrn"),
        ({"given_name": "Ada\x00"}, "given_name"),
        ({"email": "not-an-email"}, "email"),
        ({"is_admin": True}, "is_admin"),
        ({"pseudonym": "P-CHOSEN1234"}, "pseudonym"),
        ({"study": str(uuid.uuid4())}, "study"),
    ],
)
def test_bad_participant_input_is_a_400_naming_the_field_and_nothing_is_written(
    change: dict[str, Any], field: str, coordinator: APIClient, study: dict[str, Any]
) -> None:
    response = coordinator.post("/api/v1/participants/", {**ADA, "study": study["id"], **change}, format="json")
    assert response.status_code == 400, response.content
    assert field in fields(response)
    assert "Ada" not in response.content.decode() or (field == "given_name" and "\x00" not in response.content.decode())
    with schema_context("alpha"):
        assert not Participant.objects.exists()


def test_a_participant_update_needs_the_current_etag(
    coordinator: APIClient, pi: APIClient, ada: dict[str, Any]
) -> None:
    consent(coordinator, ada, "research_use")
    tag = pi.get(f"/api/v1/participants/{ada['id']}/")["ETag"]
    url = f"/api/v1/participants/{ada['id']}/"
    assert coordinator.patch(url, {"city": "Marylebone"}, format="json").status_code == 428
    assert coordinator.patch(url, {"city": "Marylebone"}, format="json", HTTP_IF_MATCH=tag).status_code == 200
    stale = coordinator.patch(url, {"city": "Soho"}, format="json", HTTP_IF_MATCH=tag)
    assert stale.status_code == 409
    assert pi.get(url).json()["city"] == "Marylebone"


def test_phi_is_encrypted_in_the_database(ada: dict[str, Any]) -> None:
    with schema_context("alpha"), connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(ADA)} FROM participants_participant")  # noqa: S608  # constant names
        stored = dict(zip(ADA, cursor.fetchone() or (), strict=True))
    assert all(stored[name] and stored[name] != value for name, value in ADA.items())
    # A long value would show inside its column if it were kept in clear; a two-letter one may turn up
    # in any ciphertext by chance, so only the long ones are searched for.
    row = " ".join(str(value) for value in stored.values())
    assert not [value for value in PHI_VALUES if len(value) >= 5 and value in row]


def test_reads_name_the_participant_for_the_accounting_of_disclosures(
    pi: APIClient, coordinator: APIClient, ada: dict[str, Any]
) -> None:
    consent(coordinator, ada, "research_use")
    pi.get(f"/api/v1/participants/{ada['id']}/")
    pi.get("/api/v1/participants/")
    with schema_context("alpha"):
        reads = chained_events().filter(participant_pseudonyms__contains=[ada["pseudonym"]], outcome="allow")
        assert {"participant.read", "participant.list"} <= set(reads.values_list("action", flat=True))
