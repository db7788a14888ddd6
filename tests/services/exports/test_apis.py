"""Exports over the API: who may ask, what the downloaded file holds (and never holds), and every refusal.

The broker is stood in (``built_at_once``), so an accepted export is built as
soon as its request commits.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django_tenants.utils import schema_context
from pytest_django import DjangoCaptureOnCommitCallbacks
from rest_framework.test import APIClient

from security.audit.selectors import audit_events
from security.models import User
from services.exports.models import DeidentifiedExport
from services.studies.models import Study
from tenants.models import Community
from tests.factories import StudyFactory
from tests.support.clients import MemberClient
from tests.support.exports import EXPORTS, NOTE, PHI, ReadyExport, downloaded, parse, run_committed, sealed_files
from vault.errors import CiphertextIntegrityError, KeyDestroyed

# --- asking for an export, and who may ----------------------------------------------------------


@pytest.mark.parametrize("export_format", ["csv", "jsonl"])
@pytest.mark.usefixtures("built_at_once")
def test_a_pi_with_a_fresh_second_factor_gets_a_deidentified_dataset(
    export_format: str,
    pi: tuple[APIClient, User],
    study: Study,
    export_dir: Path,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, user = pi

    with django_capture_on_commit_callbacks() as callbacks:
        accepted = client.post(EXPORTS, {"study": str(study.id), "format": export_format}, format="json")
    assert accepted.status_code == 202, accepted.content
    assert accepted.json()["status"] == "pending"
    assert accepted.json()["requested_by"] == str(user.pk)
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
    assert (grace["birth_year"], grace["state"]) == (1976, "NH")
    assert [(o["code"], o["unit"], o["effective_year"]) for o in grace["observations"]] == [("2345-7", None, 2024)]
    assert sorted(o["code"] for o in augusta["observations"]) == ["2345-7", "718-7"]

    manifest = client.get(status.json()["links"]["manifest"]).json()
    assert manifest["bytes"] == len(content) == int(download["Content-Length"])
    assert manifest["format"] == export_format
    assert manifest["participants"] == 2
    assert manifest["participants_excluded_without_research_consent"] == 2
    assert manifest["observations_dropped_uncoded"] == 1
    assert [kind["letter"] for kind in manifest["identifiers"]] == list("abcdefghijklmnopqr")
    assert all(kind["handling"] and kind["detail"] for kind in manifest["identifiers"])
    assert "036" in manifest["restricted_zip3"]


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

    response = client.post(EXPORTS, {"study": str(study.id), "format": "csv"}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "action_not_permitted"
    with schema_context("alpha"):
        assert not DeidentifiedExport.objects.exists()


def test_asking_for_an_export_needs_a_recent_second_factor(
    member_client: MemberClient, study: Study, export_dir: Path
) -> None:
    client, _ = member_client("principal_investigator")  # password only

    response = client.post(EXPORTS, {"study": str(study.id), "format": "csv"}, format="json")

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
        {"study": "STUDY", "format": "csv", "colour": "red"},
        {"study": "STUDY", "format": "xlsx"},
        {"study": "not-a-uuid", "format": "csv"},
        {"format": "csv"},
        {"study": "STUDY"},
    ],
)
def test_an_export_request_that_makes_no_sense_is_a_400(
    body: dict[str, str], pi: tuple[APIClient, User], study: Study
) -> None:
    client, _ = pi
    payload = {key: str(study.id) if value == "STUDY" else value for key, value in body.items()}

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

    foreign = client.post(EXPORTS, {"study": str(beta_study.id), "format": "csv"}, format="json")
    unknown = client.post(EXPORTS, {"study": str(uuid.uuid4()), "format": "csv"}, format="json")

    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["code"] == unknown.json()["code"] == "study_not_found"
    assert foreign.json()["detail"] == unknown.json()["detail"]
    with schema_context("alpha"):
        assert not DeidentifiedExport.objects.exists()


@pytest.mark.parametrize("suffix", ["", "download/", "manifest/"])
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
    accepted = client.post(EXPORTS, {"study": str(study.id), "format": "csv"}, format="json")  # nothing commits

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
