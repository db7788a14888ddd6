"""Participants over the API: redacted views, the blind-indexed MRN search, paging, input checks, PHI encrypted."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from services.participants.models import Participant
from tests.support.audit import chained_events
from tests.support.clients import MemberClient
from tests.support.research import ADA, PHI_VALUES, consent, fields

SEARCH = "/api/v1/participants/search/"


def test_a_researcher_gets_the_redacted_view_and_cannot_search_by_mrn(
    researcher: APIClient, coordinator: APIClient, ada: dict[str, Any]
) -> None:
    consent(coordinator, ada, "research_use")
    read = researcher.get(f"/api/v1/participants/{ada['id']}/")
    assert read.status_code == 200
    assert all(read.json()[key] is None for key in ADA)
    assert read.json()["pseudonym"] == ada["pseudonym"]
    for term in ("mrn", "email"):
        search = researcher.post(SEARCH, {term: ADA[term]}, format="json")
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

    found = pi.post(SEARCH, {"mrn": "MRN-000123"}, format="json").json()["results"]
    assert [item["id"] for item in found] == [ada["id"]]
    assert pi.post(SEARCH, {"mrn": "MRN-00012"}, format="json").json()["results"] == []
    assert len(pi.get("/api/v1/participants/", {"study": study["id"]}).json()["results"]) == 2
    duplicate = coordinator.post("/api/v1/participants/", {**ADA, "study": study["id"]}, format="json")
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "duplicate_mrn"


@pytest.mark.parametrize("term", ["mrn", "email"])
def test_the_list_refuses_an_identifier_in_its_query_string_without_echoing_or_logging_it(
    term: str, pi: APIClient, ada: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("DEBUG"):
        refused = pi.get("/api/v1/participants/", {term: ADA[term]})

    assert refused.status_code == 400
    assert refused["Content-Type"] == "application/problem+json"
    assert refused.json()["code"] == "search_in_url"
    assert SEARCH in refused.json()["detail"]
    assert ADA[term].encode() not in refused.content
    assert ADA[term] not in caplog.text


def test_an_email_search_is_exact_and_ignores_case(pi: APIClient, coordinator: APIClient, ada: dict[str, Any]) -> None:
    consent(coordinator, ada, "research_use")

    found = pi.post(SEARCH, {"email": ADA["email"].upper()}, format="json")

    assert found.status_code == 200
    assert [item["id"] for item in found.json()["results"]] == [ada["id"]]
    assert pi.post(SEARCH, {"email": "ada@example.com"}, format="json").json()["results"] == []


def test_the_search_is_decided_as_the_list_and_narrowed_to_the_consent(
    pi: APIClient, coordinator: APIClient, ada: dict[str, Any]
) -> None:
    unconsented = pi.post(SEARCH, {"mrn": ADA["mrn"]}, format="json")
    consent(coordinator, ada, "research_use")
    consented = pi.post(SEARCH, {"mrn": ADA["mrn"]}, format="json")

    assert unconsented.json()["results"] == []
    assert [item["id"] for item in consented.json()["results"]] == [ada["id"]]
    assert consented.json()["results"][0]["mrn"] == ADA["mrn"]
    with schema_context("alpha"):
        event = chained_events().get(request_id=consented["X-Request-ID"])
    assert (event.action, event.resource_type, event.outcome) == ("participant.list", "participant", "allow")
    assert event.participant_pseudonyms == [ada["pseudonym"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "non_field_errors"),
        ({"mrn": "MRN-1", "email": "a@example.org"}, "non_field_errors"),
        ({"name": "Ada"}, "name"),
    ],
    ids=["neither", "both", "unknown"],
)
def test_a_search_names_exactly_one_identifier(body: dict[str, Any], field: str, pi: APIClient) -> None:
    refused = pi.post(SEARCH, body, format="json")

    assert refused.status_code == 400
    assert fields(refused) == {field}


def test_search_pages_carry_a_cursor_in_the_body_and_never_the_identifier(
    pi: APIClient, coordinator: APIClient, study: dict[str, Any]
) -> None:
    created = []
    for n in range(3):
        body = {**ADA, "study": study["id"], "mrn": f"MRN-S{n}"}
        created.append(coordinator.post("/api/v1/participants/", body, format="json").json())
        consent(coordinator, created[-1], "research_use")

    first = pi.post(SEARCH, {"email": ADA["email"], "limit": 2}, format="json").json()
    cursor = first["next"]
    second = pi.post(SEARCH, {"email": ADA["email"], "limit": 2, "cursor": cursor}, format="json").json()

    assert not cursor.startswith("http")
    assert "example" not in base64.b64decode(cursor).decode()
    assert [item["id"] for item in first["results"] + second["results"]] == [item["id"] for item in created]
    assert second["next"] is None
    assert ADA["email"] not in str(first["previous"]) + str(second["previous"])


def test_a_search_on_another_community_finds_nothing_of_this_one(
    member_client: MemberClient, coordinator: APIClient, ada: dict[str, Any]
) -> None:
    consent(coordinator, ada, "research_use")
    beta_pi, _ = member_client("principal_investigator", on_beta=True)

    found = beta_pi.post(SEARCH, {"mrn": ADA["mrn"]}, format="json")

    assert found.status_code == 200
    assert found.json()["results"] == []


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
