"""Exports over the API: who may ask and determine, what the downloaded file holds (and never holds), every refusal.

The broker is stood in (``built_at_once``), so an accepted export is built as
soon as its request commits.
"""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path
from typing import Any

import pytest
import time_machine
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django_tenants.utils import schema_context
from pytest_django import DjangoCaptureOnCommitCallbacks
from rest_framework.test import APIClient

from security.audit.selectors import audit_events
from security.models import User
from services.exports.models import DeidentifiedExport, ExportDetermination
from services.studies.models import Study
from tenants.models import Community
from tests.factories import MembershipFactory, StudyFactory
from tests.support.clients import MemberClient
from tests.support.exports import (
    EXPORTS,
    NOTE,
    PHI,
    PURPOSE,
    RECIPIENT,
    STATEMENT,
    ReadyExport,
    determine,
    downloaded,
    export_body,
    parse,
    request_export,
    run_committed,
    sealed_files,
)
from vault.errors import CiphertextIntegrityError, KeyDestroyed

# --- asking for an export, and who may ----------------------------------------------------------


@pytest.mark.parametrize("export_format", ["csv", "jsonl"])
@pytest.mark.usefixtures("built_at_once")
def test_a_pi_with_a_fresh_second_factor_gets_a_deidentified_dataset(
    export_format: str,
    pi: tuple[APIClient, User],
    officer: tuple[APIClient, User],
    study: Study,
    export_dir: Path,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, user = pi

    with django_capture_on_commit_callbacks() as callbacks:
        accepted = client.post(EXPORTS, export_body(study, export_format), format="json")
    assert accepted.status_code == 202, accepted.content
    assert accepted.json()["status"] == "pending"
    assert accepted.json()["requested_by"] == str(user.pk)
    assert (accepted.json()["recipient"], accepted.json()["purpose"]) == (RECIPIENT, PURPOSE)
    assert accepted.json()["determination"] is None
    assert accepted["Location"] == accepted.json()["links"]["self"] == f"{EXPORTS}{accepted.json()['id']}/"
    run_committed(callbacks)

    status = client.get(accepted["Location"])
    assert status.status_code == 200
    assert status["Cache-Control"] == "no-store"
    assert status.json()["status"] == "ready"
    assert status.json()["participant_count"] == 2
    assert status.json()["observation_count"] == 3
    assert set(status.json()["links"]) == {"self", "download", "manifest"}
    assert [listed["id"] for listed in client.get(EXPORTS).json()] == [accepted.json()["id"]]
    assert client.get(status.json()["links"]["download"]).json()["code"] == "determination_required"
    assert determine(officer[0], accepted.json()["id"]).status_code == 201

    download = client.get(status.json()["links"]["download"])
    assert download.status_code == 200
    assert download["Cache-Control"] == "no-store"
    assert download["Content-Disposition"].startswith("attachment;")
    content = b"".join(download.streaming_content)  # type: ignore[attr-defined]
    text = content.decode()
    for value in [*PHI, NOTE, "Glucose", "Withdrawn", "Unasked", "2025-03-14", "P-"]:
        assert value.lower() not in text.lower(), value
    people = parse(export_format, text)
    assert sorted(person["zip3"] for person in people) == ["000", "021"]
    augusta = next(person for person in people if person["zip3"] == "021")
    assert (augusta["age"], augusta["birth_year"], augusta["sex"], augusta["state"]) == ("90+", None, "female", "MA")
    grace = next(person for person in people if person["zip3"] == "000")
    year = int(manifest_of(client, accepted.json()["id"])["export_year"])
    assert (grace["birth_year"], grace["age"], grace["state"]) == (1976, year - 1976, "NH")
    assert [(o["code"], o["unit"], o["effective_year"]) for o in grace["observations"]] == [("2345-7", None, 2024)]
    assert sorted(o["code"] for o in augusta["observations"]) == ["2345-7", "718-7"]

    manifest = client.get(status.json()["links"]["manifest"]).json()
    assert manifest["bytes"] == len(content) == int(download["Content-Length"])
    assert manifest["format"] == export_format
    assert manifest["participants"] == 2
    assert manifest["participants_excluded_without_research_consent"] == 2
    assert manifest["observations_dropped"] == {
        "uncoded": 1,
        "personal_date_or_age": 0,
        "not_in_value_set": 0,
        "value_out_of_range": 0,
    }
    assert [kind["letter"] for kind in manifest["identifiers"]] == list("abcdefghijklmnopqr")
    assert all(kind["handling"] and kind["detail"] for kind in manifest["identifiers"])


def test_the_manifest_names_its_method_its_zip3_table_its_recipient_and_its_small_cells(
    pi: tuple[APIClient, User], ready_export: ReadyExport
) -> None:
    manifest = manifest_of(pi[0], ready_export(determined=False)["id"])

    assert "small cells" in manifest["method"]
    assert "determination" in manifest["method"]  # Safe Harbor is not the whole claim
    assert manifest["zip3_table"]["kind"] == "allowlist"
    assert "NOT the 2020 Census table" in manifest["zip3_table"]["source"]
    assert (manifest["zip3_table"]["vintage"], manifest["zip3_table"]["table"]) == ("none", "none")
    assert (manifest["recipient"], manifest["purpose"]) == (RECIPIENT, PURPOSE)
    assert manifest["small_cells"]["min_cell"] == 1
    assert "ages_as_of" not in manifest
    assert isinstance(manifest["export_year"], int)


def manifest_of(client: APIClient, export_id: str) -> dict[str, Any]:
    response = client.get(f"{EXPORTS}{export_id}/manifest/")
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def test_two_exports_of_the_same_study_share_no_research_id(
    pi: tuple[APIClient, User],
    ready_export: ReadyExport,
) -> None:
    client, _ = pi

    def exported() -> list[dict[str, Any]]:
        export = ready_export("jsonl")
        return parse("jsonl", downloaded(client, export["id"]).decode())

    first, second = exported(), exported()

    assert {person["research_id"] for person in first}.isdisjoint(person["research_id"] for person in second)


def test_the_download_is_audited(
    pi: tuple[APIClient, User],
    ready_export: ReadyExport,
) -> None:
    client, user = pi
    export = ready_export()

    downloaded(client, export["id"])

    with schema_context("alpha"):
        requested = list(audit_events(action="export.request"))
        downloads = list(audit_events(action="export.download"))
    assert [(event.resource_id, event.outcome) for event in requested] == [(export["id"], "allow")]
    assert [(event.resource_id, event.actor_id, event.outcome) for event in downloads] == [
        (export["id"], str(user.pk), "allow")
    ]


@pytest.mark.parametrize("role", ["researcher", "coordinator", "auditor"])
def test_only_principal_investigators_may_ask_for_an_export(
    role: str, member_client: MemberClient, study: Study, export_dir: Path
) -> None:
    client, _ = member_client(role, second_factor=True)

    response = client.post(EXPORTS, export_body(study), format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "action_not_permitted"
    with schema_context("alpha"):
        assert not DeidentifiedExport.objects.exists()


def test_asking_for_an_export_needs_a_recent_second_factor(
    member_client: MemberClient, study: Study, export_dir: Path
) -> None:
    client, _ = member_client("principal_investigator")  # password only

    response = client.post(EXPORTS, export_body(study), format="json")

    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "mfa_required"
    with schema_context("alpha"):
        assert not DeidentifiedExport.objects.exists()


def test_downloading_needs_a_recent_second_factor_and_the_role(
    ready_export: ReadyExport,
    member_client: MemberClient,
) -> None:
    download = f"{EXPORTS}{ready_export()['id']}/download/"
    password_only, _ = member_client("principal_investigator")
    researcher, _ = member_client("researcher", second_factor=True)

    refused = password_only.get(download)
    hidden = researcher.get(download)

    assert refused.status_code == 403
    assert refused.json()["code"] == "mfa_required"
    assert hidden.status_code == 404  # a route the role may not use looks like a missing export
    assert "R-" not in refused.content.decode() + hidden.content.decode()


@pytest.mark.parametrize(
    "body",
    [
        {"colour": "red"},
        {"format": "xlsx"},
        {"study": "not-a-uuid"},
        {"study": None},
        {"format": None},
        {"recipient": None},
        {"purpose": None},
        {"purpose": "research"},  # not a sentence
        {"purpose": "x" * 1001},
        {"recipient": {"name": "Dana"}},  # no organisation
        {"recipient": {**RECIPIENT, "email": "dana@example.org"}},
        {"recipient": {**RECIPIENT, "name": "Dana\u0000Reviewer"}},
        {"recipient": "Dana Reviewer, Example University"},
    ],
)
def test_an_export_request_that_makes_no_sense_is_a_400(
    body: dict[str, Any], pi: tuple[APIClient, User], study: Study
) -> None:
    client, _ = pi
    payload = {key: value for key, value in {**export_body(study), **body}.items() if value is not None}

    response = client.post(EXPORTS, payload, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_failed"
    with schema_context("alpha"):
        assert not DeidentifiedExport.objects.exists()


def test_a_study_of_another_community_is_not_found_like_a_random_id(
    pi: tuple[APIClient, User], beta: Community, export_dir: Path
) -> None:
    client, _ = pi
    beta_study = StudyFactory.create(community=beta, title="Sleep", protocol_number="BETA-01")

    foreign = client.post(EXPORTS, export_body(beta_study), format="json")
    unknown = client.post(EXPORTS, {**export_body(beta_study), "study": str(uuid.uuid4())}, format="json")

    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["code"] == unknown.json()["code"] == "study_not_found"
    assert foreign.json()["detail"] == unknown.json()["detail"]
    with schema_context("alpha"):
        assert not DeidentifiedExport.objects.exists()


@pytest.mark.parametrize("suffix", ["", "download/", "manifest/", "determination/"])
def test_an_alpha_export_is_not_found_on_beta(
    suffix: str,
    ready_export: ReadyExport,
    member_client: MemberClient,
) -> None:
    export_id = ready_export()["id"]
    beta_pi, _ = member_client("principal_investigator", second_factor=True, on_beta=True)

    response = beta_pi.get(f"{EXPORTS}{export_id}/{suffix}")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert beta_pi.get(EXPORTS).json() == []


def test_an_export_not_built_yet_is_a_409(pi: tuple[APIClient, User], study: Study, export_dir: Path) -> None:
    client, _ = pi
    accepted = client.post(EXPORTS, export_body(study), format="json")  # nothing commits

    for suffix in ("download/", "manifest/"):
        response = client.get(accepted["Location"] + suffix)
        assert response.status_code == 409
        assert response.json()["code"] == "export_not_ready"
    assert client.get(accepted["Location"]).json()["status"] == "pending"


# --- a file that cannot be served -------------------------------------------------------------


def test_a_tampered_file_is_never_served_as_a_dataset(
    pi: tuple[APIClient, User],
    export_dir: Path,
    ready_export: ReadyExport,
) -> None:
    client, _ = pi
    export_id = ready_export()["id"]
    (path,) = sealed_files(export_dir)
    sealed = bytearray(path.read_bytes())
    sealed[-5] ^= 0x01
    path.write_bytes(bytes(sealed))

    response = client.get(f"{EXPORTS}{export_id}/download/")

    assert response.status_code == 200  # the headers went out; the stream is cut at the bad chunk
    with pytest.raises(CiphertextIntegrityError):
        b"".join(response.streaming_content)  # type: ignore[attr-defined]


def test_a_missing_file_or_a_retired_key_is_a_clean_problem(
    pi: tuple[APIClient, User],
    export_dir: Path,
    ready_export: ReadyExport,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, _ = pi
    download = f"{EXPORTS}{ready_export()['id']}/download/"

    def retired(community: str, version: int) -> AESGCM:
        raise KeyDestroyed(f"data key v{version} of {community} is gone")

    monkeypatch.setattr("services.exports.selectors.read_key", retired)
    gone = client.get(download)
    for path in sealed_files(export_dir):
        path.unlink()
    missing = client.get(download)

    assert (gone.status_code, gone.json()["code"]) == (410, "export_key_retired")
    assert (missing.status_code, missing.json()["code"]) == (404, "export_file_missing")


# --- the determination of no actual knowledge ---------------------------------------------------------


def test_the_download_is_refused_until_a_compliance_officer_signs_off_the_determination(
    pi: tuple[APIClient, User], officer: tuple[APIClient, User], ready_export: ReadyExport
) -> None:
    client, _ = pi
    export_id = ready_export(determined=False)["id"]

    refused = client.get(f"{EXPORTS}{export_id}/download/")
    made = determine(officer[0], export_id, conditions="Recipient signs the lab's data use agreement first.")
    served = client.get(f"{EXPORTS}{export_id}/download/")

    assert (refused.status_code, refused.json()["code"]) == (409, "determination_required")
    assert "R-" not in refused.content.decode()
    assert made.status_code == 201, made.content
    assert served.status_code == 200


def test_the_determination_records_the_officer_the_time_the_statement_and_the_manifest_it_covers(
    pi: tuple[APIClient, User], officer: tuple[APIClient, User], ready_export: ReadyExport
) -> None:
    client, _ = pi
    officer_client, officer_user = officer
    export_id = ready_export(determined=False)["id"]
    requested = officer_client.get("/api/v1/audit/events/", {"action": "export.request"})
    review = officer_client.get(f"{EXPORTS}{export_id}/determination/").json()

    made = determine(officer_client, export_id, conditions="No linkage with other datasets.")
    shown = client.get(f"{EXPORTS}{export_id}/").json()

    assert export_id in requested.content.decode()  # how an officer finds exports awaiting a determination
    assert review["manifest"] == manifest_of(client, export_id)
    assert review["export"]["determination"] is None
    determination = shown["determination"]
    assert made.json()["determination"] == determination
    assert determination["determined_by"] == str(officer_user.pk)
    assert determination["determined_at"]
    assert (determination["statement"], determination["conditions"]) == (STATEMENT, "No linkage with other datasets.")
    assert determination["manifest_sha256"] == shown["manifest_sha256"] == review["export"]["manifest_sha256"]
    assert shown["recipient"] == RECIPIENT
    with schema_context("alpha"):
        events = [(e.actor_id, e.outcome, e.resource_id) for e in audit_events(action="export.determine")]
    assert (str(officer_user.pk), "allow", export_id) in events


def test_a_requester_who_is_also_a_compliance_officer_cannot_determine_their_own_export(
    pi: tuple[APIClient, User], ready_export: ReadyExport, alpha: Community
) -> None:
    client, user = pi
    MembershipFactory.create(user=user, community=alpha, role="compliance_officer")
    export_id = ready_export(determined=False)["id"]

    review = client.get(f"{EXPORTS}{export_id}/determination/")
    refused = client.post(
        f"{EXPORTS}{export_id}/determination/",
        {"statement": STATEMENT, "manifest_sha256": review.json()["export"]["manifest_sha256"]},
        format="json",
    )

    assert review.status_code == 200  # the role lets them see what they would sign
    assert (refused.status_code, refused.json()["code"]) == (403, "self_determination")
    assert client.get(f"{EXPORTS}{export_id}/").json()["determination"] is None
    assert client.get(f"{EXPORTS}{export_id}/download/").json()["code"] == "determination_required"
    with schema_context("alpha"):
        outcomes = [(e.outcome, e.reasons) for e in audit_events(action="export.determine")]
    assert ("deny", ["self_determination"]) in outcomes


@pytest.mark.parametrize("role", ["principal_investigator", "coordinator", "researcher", "auditor", "owner"])
def test_only_a_compliance_officer_may_determine_an_export_and_others_see_no_such_route(
    role: str, member_client: MemberClient, ready_export: ReadyExport
) -> None:
    export_id = ready_export(determined=False)["id"]
    client, _ = member_client(role, second_factor=True)

    review = client.get(f"{EXPORTS}{export_id}/determination/")
    attempt = client.post(
        f"{EXPORTS}{export_id}/determination/", {"statement": STATEMENT, "manifest_sha256": "0" * 64}, format="json"
    )

    assert (review.status_code, attempt.status_code) == (404, 404)
    with schema_context("alpha"):
        assert not ExportDetermination.objects.exists()


def test_an_officer_lists_the_exports_awaiting_a_determination_and_never_betas(
    member_client: MemberClient, officer: tuple[APIClient, User], ready_export: ReadyExport
) -> None:
    pending = ready_export(determined=False)["id"]
    made = ready_export()["id"]
    client, _ = officer
    beta_officer, _ = member_client("compliance_officer", on_beta=True)

    queue = client.get(EXPORTS, {"determination": "pending"})
    done = client.get(EXPORTS, {"determination": "made"})

    assert [item["id"] for item in queue.json()] == [pending]
    assert queue.json()[0]["recipient"]["organisation"]
    assert [item["id"] for item in done.json()] == [made]
    assert {item["id"] for item in client.get(EXPORTS).json()} == {pending, made}
    assert beta_officer.get(EXPORTS, {"determination": "pending"}).json() == []


def test_an_unknown_determination_filter_is_a_400(officer: tuple[APIClient, User]) -> None:
    response = officer[0].get(EXPORTS, {"determination": "maybe"})

    assert (response.status_code, response.json()["code"]) == (400, "invalid_filter")


def test_determining_an_export_needs_a_recent_second_factor(
    member_client: MemberClient, ready_export: ReadyExport
) -> None:
    export_id = ready_export(determined=False)["id"]
    client, _ = member_client("compliance_officer")  # password only

    response = client.post(
        f"{EXPORTS}{export_id}/determination/", {"statement": STATEMENT, "manifest_sha256": "0" * 64}, format="json"
    )

    assert (response.status_code, response.json()["code"]) == (403, "mfa_required")
    with schema_context("alpha"):
        assert not ExportDetermination.objects.exists()


def test_a_determination_naming_another_manifest_or_made_twice_is_a_409(
    officer: tuple[APIClient, User], ready_export: ReadyExport
) -> None:
    client, _ = officer
    export_id = ready_export(determined=False)["id"]
    path = f"{EXPORTS}{export_id}/determination/"

    stale = client.post(path, {"statement": STATEMENT, "manifest_sha256": "a" * 64}, format="json")
    first = determine(client, export_id)
    second = determine(client, export_id)

    assert (stale.status_code, stale.json()["code"]) == (409, "manifest_mismatch")
    assert first.status_code == 201
    assert (second.status_code, second.json()["code"]) == (409, "already_determined")


def test_an_export_not_built_yet_cannot_be_determined(
    pi: tuple[APIClient, User], officer: tuple[APIClient, User], study: Study, export_dir: Path
) -> None:
    accepted = pi[0].post(EXPORTS, export_body(study), format="json")  # nothing commits, nothing is built

    review = officer[0].get(f"{accepted['Location']}determination/")
    attempt = officer[0].post(
        f"{accepted['Location']}determination/", {"statement": STATEMENT, "manifest_sha256": "0" * 64}, format="json"
    )

    assert (review.status_code, review.json()["code"]) == (409, "export_not_ready")
    assert (attempt.status_code, attempt.json()["code"]) == (409, "export_not_ready")


@pytest.mark.parametrize(
    "body",
    [
        {"manifest_sha256": "0" * 64},
        {"statement": "fine", "manifest_sha256": "0" * 64},  # not a statement
        {"statement": STATEMENT},
        {"statement": STATEMENT, "manifest_sha256": "not-a-hash"},
        {"statement": STATEMENT, "manifest_sha256": "0" * 64, "determined_by": "someone else"},
    ],
)
def test_a_determination_that_makes_no_sense_is_a_400(
    body: dict[str, str], officer: tuple[APIClient, User], ready_export: ReadyExport
) -> None:
    export_id = ready_export(determined=False)["id"]

    response = officer[0].post(f"{EXPORTS}{export_id}/determination/", body, format="json")

    assert (response.status_code, response.json()["code"]) == (400, "validation_failed")


def test_an_alpha_export_is_determined_on_beta_as_a_random_id_is(
    member_client: MemberClient, ready_export: ReadyExport
) -> None:
    export_id = ready_export(determined=False)["id"]
    beta_officer, _ = member_client("compliance_officer", second_factor=True, on_beta=True)
    body = {"statement": STATEMENT, "manifest_sha256": "0" * 64}

    foreign = beta_officer.post(f"{EXPORTS}{export_id}/determination/", body, format="json")
    unknown = beta_officer.post(f"{EXPORTS}{uuid.uuid4()}/determination/", body, format="json")

    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["code"] == unknown.json()["code"] == "not_found"
    assert foreign.json()["detail"] == unknown.json()["detail"]
    with schema_context("alpha"):
        assert not ExportDetermination.objects.exists()


# --- dates: exports on different days of a year say the same --------------------------------------------


@pytest.mark.usefixtures("built_at_once")
def test_two_exports_on_different_days_of_a_year_give_the_same_demographic_values(
    member_client: MemberClient,
    study: Study,
    export_dir: Path,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    """Review 1.2: Grace, born 9 December, exported before and after her birthday: nothing tells the two apart."""

    def demographics(on: datetime.datetime) -> list[tuple[Any, ...]]:
        with time_machine.travel(on, tick=False):
            client, _ = member_client("principal_investigator", second_factor=True)
            officer, _ = member_client("compliance_officer", second_factor=True)
            export = request_export(client, study, django_capture_on_commit_callbacks, "jsonl")
            assert determine(officer, export["id"]).status_code == 201
            people = parse("jsonl", downloaded(client, export["id"]).decode())
        return sorted((p["sex"], str(p["birth_year"]), str(p["age"]), str(p["state"]), p["zip3"]) for p in people)

    before = demographics(datetime.datetime(2026, 1, 2, 9, tzinfo=datetime.UTC))
    after = demographics(datetime.datetime(2026, 12, 30, 17, tzinfo=datetime.UTC))

    assert before == after
    assert ("female", "1976", "50", "NH", "000") in before


def test_a_manifest_edited_in_the_database_after_the_determination_stops_the_download(
    pi: tuple[APIClient, User], ready_export: ReadyExport
) -> None:
    """An operator with database access widens the recipient after sign-off: the determination no longer covers it."""
    client, _ = pi
    export_id = ready_export()["id"]
    with schema_context("alpha"):
        export = DeidentifiedExport.objects.get(pk=export_id)
        assert export.manifest is not None
        export.manifest = {**export.manifest, "recipient": {**export.manifest["recipient"], "name": "Anyone"}}
        export.save(update_fields=["manifest"])

    response = client.get(f"{EXPORTS}{export_id}/download/")

    assert (response.status_code, response.json()["code"]) == (409, "manifest_mismatch")
    assert "R-" not in response.content.decode()
