"""Studies, participants, consents and observations through the whole path: token, policy, encryption, audit."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from security.models import User
from services.consents.models import Consent
from services.observations.models import Observation
from services.participants.models import Participant
from services.studies.models import Study
from tenants.models import Community
from tests.audit.log import chained_events
from tests.conftest import ALPHA_HOST, BETA_HOST, MemberClient, bearer

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


@pytest.fixture
def pi(member_client: MemberClient) -> APIClient:
    return member_client("principal_investigator")[0]


@pytest.fixture
def coordinator(member_client: MemberClient) -> APIClient:
    return member_client("coordinator")[0]


@pytest.fixture
def researcher(member_client: MemberClient) -> APIClient:
    return member_client("researcher")[0]


@pytest.fixture
def study(pi: APIClient) -> dict[str, Any]:
    response = pi.post(
        "/api/v1/studies/",
        {
            "title": "Sleep and memory",
            "protocol_number": "SLP-2026-01",
            "irb_approval_number": "IRB-77",
            "irb_approval_date": "2026-01-15",
            "status": "active",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return dict(response.json())


@pytest.fixture
def ada(coordinator: APIClient, study: dict[str, Any]) -> dict[str, Any]:
    response = coordinator.post("/api/v1/participants/", {"study": study["id"], **ADA}, format="json")
    assert response.status_code == 201, response.content
    return dict(response.json())


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


# --- studies ----------------------------------------------------------------------


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


# --- participants and consent ----------------------------------------------------------


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


def test_a_researcher_gets_the_redacted_view_and_cannot_search_by_mrn(
    researcher: APIClient, coordinator: APIClient, ada: dict[str, Any]
) -> None:
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


# --- observations ----------------------------------------------------------------------


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
    text = coordinator.post("/api/v1/observations/", {**body, "value": "negative", "code": "94500-6"}, format="json")
    assert text.json()["value"] == "negative"

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


# --- one community only -----------------------------------------------------------------


def _beta_participant() -> tuple[str, str]:
    with schema_context("beta"):
        study = Study.objects.create(title="Beta", protocol_number="B-1")
        participant = Participant.objects.create(study=study, given_name="Grace")
        return str(participant.pk), str(study.pk)


@pytest.mark.parametrize(
    "route",
    [
        "/api/v1/participants/{participant}/",
        "/api/v1/participants/{participant}/consents/",
        "/api/v1/studies/{study}/",
        "/api/v1/observations/{participant}/",
    ],
)
def test_an_id_of_another_community_is_404_like_a_random_id_and_audited(
    route: str, pi: APIClient, coordinator: APIClient
) -> None:
    participant, study = _beta_participant()
    client = coordinator if "consents" in route else pi
    theirs = client.get(route.format(participant=participant, study=study))
    random = client.get(route.format(participant=uuid.uuid4(), study=uuid.uuid4()))

    assert theirs.status_code == random.status_code == 404
    assert theirs.json()["code"] == random.json()["code"] == "not_found"
    assert "Grace" not in theirs.content.decode()
    with schema_context("alpha"):
        refused = chained_events().filter(outcome="deny", http_status=404)
        assert refused.filter(resource_id__in=[participant, study]).exists()


@pytest.mark.parametrize(
    ("method", "route", "body"),
    [
        ("patch", "/api/v1/participants/{participant}/", {"city": "Elsewhere"}),
        ("patch", "/api/v1/studies/{study}/", {"title": "Taken over"}),
        ("post", "/api/v1/participants/{participant}/consents/", {"scopes": ["contact"]}),
        ("post", "/api/v1/participants/{participant}/consents/{consent}/withdraw/", {}),
        ("post", "/api/v1/observations/", {"participant": "{participant}", "code_system": "x", "code": "1"}),
    ],
)
def test_a_write_naming_another_community_s_record_changes_nothing(
    method: str, route: str, body: dict[str, Any], pi: APIClient, coordinator: APIClient
) -> None:
    participant, study = _beta_participant()
    with schema_context("beta"):
        withdrawable = Consent.objects.create(
            participant_id=participant, scopes=["research_use"], form_version="v1", signed_at=timezone.now()
        )
    ids = {"participant": participant, "study": study, "consent": str(withdrawable.pk)}
    client = pi if "studies" in route else coordinator
    filled = {key: value.format(**ids) if isinstance(value, str) else value for key, value in body.items()}
    response = getattr(client, method)(route.format(**ids), filled, format="json", HTTP_IF_MATCH="*")

    assert response.status_code in (400, 404), response.content
    with schema_context("beta"):
        assert Participant.objects.get(pk=participant).city is None
        assert Study.objects.get(pk=study).title == "Beta"
        assert Consent.objects.get(pk=withdrawable.pk).withdrawn_at is None
        assert not Observation.objects.exists()


def test_nothing_of_beta_shows_in_alpha_lists(pi: APIClient, researcher: APIClient) -> None:
    _beta_participant()
    assert researcher.get("/api/v1/participants/").json()["results"] == []
    assert pi.get("/api/v1/studies/").json()["results"] == []


def test_a_beta_member_cannot_use_alpha_routes(
    beta: Community,
    member: Callable[..., User],
    login: Callable[..., dict[str, Any]],
    client_for: Callable[[str], APIClient],
) -> None:
    token = login(BETA_HOST, member(beta, "principal_investigator"))["access"]
    alpha_client = bearer(client_for(ALPHA_HOST), token)
    for route in ("/api/v1/studies/", "/api/v1/participants/", "/api/v1/observations/"):
        assert alpha_client.get(route).status_code == 401
