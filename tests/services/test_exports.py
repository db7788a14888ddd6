"""De-identified exports end to end: who may ask, what the file holds, how it is sealed at rest and streamed."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import Reject
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.utils import timezone
from django_tenants.utils import schema_context
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings
from rest_framework.test import APIClient

from core.exports import ExportStatus
from security.audit.selectors import audit_events
from security.models import User
from services.consents.models import Consent
from services.exports.formats import LINES
from services.exports.models import DeidentifiedExport
from services.exports.sealing import SealedWriter, file_aad, open_chunks, read_key_version
from services.exports.storage import ExportFileMissing, LocalExportStorage, S3ExportStorage, get_storage, storage_key
from services.exports.tasks import deidentified_export_task
from services.observations.models import Observation
from services.participants.models import Participant
from services.studies.models import Study
from tests.conftest import MemberClient
from vault.errors import CiphertextIntegrityError, KeyDestroyed
from vault.keys import read_key

EXPORTS = "/api/v1/exports/"
KEY = AESGCM.generate_key(bit_length=256)

ADA = {
    "given_name": "Augusta",
    "family_name": "Lovelace",
    "date_of_birth": date(1930, 12, 10),  # over 89
    "sex": "female",
    "mrn": "MRN0042137",
    "email": "augusta@example.org",
    "phone": "(617) 555-0142",
    "street_address": "12 Marlborough Street",
    "city": "Cambridge",
    "state": "MA",
    "postal_code": "02139-4307",
}
GRACE = {
    "given_name": "Graceful",
    "family_name": "Hopperton",
    "date_of_birth": date(1976, 12, 9),
    "sex": "F",
    "mrn": "MRN0099881",
    "email": "grace@example.org",
    "phone": "617.555.0199",
    "street_address": "1 Shelter Road",
    "city": "Hanover",
    "state": "NH",
    "postal_code": "03601",  # a restricted prefix
}
NOTE = "Augusta Lovelace called from (617) 555-0142 about the 1930-12-10 visit"
PHI = [str(value) for person in (ADA, GRACE) for key, value in person.items() if key not in ("sex", "state")]


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def export_dir(settings: Settings, tmp_path: Path) -> Path:
    """Sealed files go to a directory of this test's own."""
    settings.DEIDENTIFIED_EXPORT_STORAGE = "local"
    settings.DEIDENTIFIED_EXPORT_DIR = tmp_path
    settings.DEIDENTIFIED_EXPORT_CHUNK_BYTES = 256  # several chunks even for a small dataset
    return tmp_path


@pytest.fixture
def pi(member_client: MemberClient) -> tuple[APIClient, User]:
    """A principal investigator of alpha who has just signed in with password and TOTP."""
    return member_client("principal_investigator", second_factor=True)


def enrol(study: Study, person: dict[str, Any], *, consented: bool = True, withdrawn: bool = False) -> Participant:
    participant = Participant(study=study, **person)
    participant.save()
    if consented:
        Consent.objects.create(
            participant=participant,
            scopes=["research_use", "contact"],
            form_version="v2",
            signed_at=timezone.now(),
            withdrawn_at=timezone.now() if withdrawn else None,
        )
    return participant


def observe(participant: Participant, **fields: Any) -> Observation:
    observation = Observation(
        participant=participant,
        **{
            "code_system": "http://loinc.org",
            "code": "2345-7",
            "display": "Glucose",
            "value_number": Decimal("5.400000"),
            "unit": "mmol/L",
            "effective_date": date(2025, 3, 14),
            "note": NOTE,
            **fields,
        },
    )
    observation.save()
    return observation


def make_study(schema: str = "alpha", protocol: str = "SLP-01") -> Study:
    with schema_context(schema):
        return Study.objects.create(title="Sleep", protocol_number=protocol)


@pytest.fixture
def study(alpha: Any) -> Study:
    """Alpha's study: Augusta (90+) and Grace (restricted ZIP) consented; one withdrawn, one never asked."""
    study = make_study()
    with schema_context("alpha"):
        augusta = enrol(study, ADA)
        observe(augusta)
        observe(augusta, code="718-7", value_number=Decimal(13), unit="g/dL", value_text=NOTE)
        observe(augusta, code_system="local", code="MRN0042137")  # not a known code system: dropped
        grace = enrol(study, GRACE)
        observe(grace, effective_date=date(2024, 1, 2), unit="mg per Grace")
        enrol(study, {**ADA, "given_name": "Withdrawn"}, withdrawn=True)
        enrol(study, {**ADA, "given_name": "Unasked"}, consented=False)
    return study


def run_tasks_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand in for the broker: a queued export runs at once, through CommunityTask's checks."""

    def run_now(kwargs: dict[str, Any], **options: Any) -> None:
        deidentified_export_task(**kwargs)

    monkeypatch.setattr(deidentified_export_task, "apply_async", run_now)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Stand in for the broker: the messages of queued exports, for the test to run (or run twice)."""
    messages: list[dict[str, Any]] = []
    monkeypatch.setattr(deidentified_export_task, "apply_async", lambda kwargs, **options: messages.append(kwargs))
    return messages


def run_committed(callbacks: Iterable[Callable[[], Any]]) -> None:
    with schema_context("alpha"):
        for callback in callbacks:
            callback()


def request_export(
    client: APIClient,
    study: Study,
    captured: DjangoCaptureOnCommitCallbacks,
    export_format: str = "csv",
) -> dict[str, Any]:
    with captured() as callbacks:
        accepted = client.post(EXPORTS, {"study": str(study.id), "format": export_format}, format="json")
    assert accepted.status_code == 202, accepted.content
    run_committed(callbacks)
    body: dict[str, Any] = accepted.json()
    return body


def downloaded(client: APIClient, export_id: str) -> bytes:
    response = client.get(f"{EXPORTS}{export_id}/download/")
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content)  # type: ignore[attr-defined]


def sealed_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


# --- asking for an export, and who may ----------------------------------------------------------


@pytest.mark.parametrize("export_format", ["csv", "jsonl"])
def test_a_pi_with_a_fresh_second_factor_gets_a_deidentified_dataset(
    export_format: str,
    pi: tuple[APIClient, User],
    study: Study,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, user = pi
    run_tasks_at_once(monkeypatch)

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


def parse(export_format: str, text: str) -> list[dict[str, Any]]:
    """The participants of a downloaded file, in the JSON Lines shape."""
    if export_format == "jsonl":
        return [json.loads(line) for line in text.splitlines()]
    people: dict[str, dict[str, Any]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        person = people.setdefault(
            row["research_id"],
            {
                "research_id": row["research_id"],
                "sex": row["sex"],
                "birth_year": int(row["birth_year"]) if row["birth_year"] else None,
                "age": row["age"] if row["age"] == "90+" else int(row["age"]),
                "state": row["state"] or None,
                "zip3": row["zip3"],
                "observations": [],
            },
        )
        if row["code"]:
            person["observations"].append(
                {
                    "code": row["code"],
                    "unit": row["unit"] or None,
                    "effective_year": int(row["effective_year"]) if row["effective_year"] else None,
                }
            )
    return list(people.values())


def test_two_exports_of_the_same_study_share_no_research_id(
    pi: tuple[APIClient, User],
    study: Study,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, _ = pi
    run_tasks_at_once(monkeypatch)

    def exported() -> list[dict[str, Any]]:
        export = request_export(client, study, django_capture_on_commit_callbacks, "jsonl")
        return parse("jsonl", downloaded(client, export["id"]).decode())

    first, second = exported(), exported()

    assert {person["research_id"] for person in first}.isdisjoint(person["research_id"] for person in second)


def test_the_file_at_rest_is_sealed_with_the_communitys_key(
    pi: tuple[APIClient, User],
    study: Study,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, _ = pi
    run_tasks_at_once(monkeypatch)
    export = request_export(client, study, django_capture_on_commit_callbacks, "csv")
    plaintext = downloaded(client, export["id"])
    research_ids = re.findall(r"R-[A-Z0-9]{16}", plaintext.decode())

    (path,) = sealed_files(export_dir)
    at_rest = path.read_bytes()
    assert path.relative_to(export_dir).parts[0] == "alpha"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert len(research_ids) >= 2
    for readable in [*research_ids, "research_id", "90+", "2345-7", "mmol/L", "Cambridge", "Augusta"]:
        assert readable.encode() not in at_rest, readable
    assert plaintext[:64] not in at_rest

    # Only the community's own key, for this very export, opens it.
    def opened(community: str, export_id: str) -> bytes:
        with path.open("rb") as source, schema_context(community):
            version = read_key_version(source)
            aad = file_aad(community="alpha", export_id=export_id, key_version=version)
            return b"".join(open_chunks(source, cipher=read_key(community, version), aad=aad))

    assert opened("alpha", export["id"]) == plaintext
    with pytest.raises((CiphertextIntegrityError, KeyDestroyed)):
        opened("beta", export["id"])
    with pytest.raises(CiphertextIntegrityError):
        opened("alpha", str(uuid.uuid4()))


def test_the_download_is_audited(
    pi: tuple[APIClient, User],
    study: Study,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, user = pi
    run_tasks_at_once(monkeypatch)
    export = request_export(client, study, django_capture_on_commit_callbacks)

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
    pi: tuple[APIClient, User],
    member_client: MemberClient,
    study: Study,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, _ = pi
    run_tasks_at_once(monkeypatch)
    download = f"{EXPORTS}{request_export(client, study, django_capture_on_commit_callbacks)['id']}/download/"
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
    pi: tuple[APIClient, User], beta: Any, export_dir: Path
) -> None:
    client, _ = pi
    beta_study = make_study("beta", protocol="BETA-01")

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
    pi: tuple[APIClient, User],
    member_client: MemberClient,
    study: Study,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, _ = pi
    run_tasks_at_once(monkeypatch)
    export_id = request_export(client, study, django_capture_on_commit_callbacks)["id"]
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


def test_a_broker_that_refuses_the_task_marks_the_export_failed(
    pi: tuple[APIClient, User],
    study: Study,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, _ = pi

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    monkeypatch.setattr(deidentified_export_task, "apply_async", broker_down)
    export = request_export(client, study, django_capture_on_commit_callbacks)

    status = client.get(f"{EXPORTS}{export['id']}/").json()
    assert (status["status"], status["error"]) == ("failed", "queue_unavailable")
    assert status["finished_at"] is not None
    assert client.get(f"{EXPORTS}{export['id']}/download/").status_code == 409


def test_a_queued_export_of_a_requester_who_lost_the_role_is_not_built(
    pi: tuple[APIClient, User],
    study: Study,
    export_dir: Path,
    queued: list[dict[str, Any]],
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, user = pi
    export = request_export(client, study, django_capture_on_commit_callbacks)
    user.memberships.update(role="researcher")

    with pytest.raises(Reject, match="action_not_permitted"):
        deidentified_export_task(**queued[0])

    with schema_context("alpha"):
        assert DeidentifiedExport.objects.get(pk=export["id"]).status == ExportStatus.PENDING
    assert sealed_files(export_dir) == []


def test_a_build_that_breaks_is_marked_failed_with_no_data_and_leaves_no_file(
    pi: tuple[APIClient, User],
    study: Study,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    queued: list[dict[str, Any]],
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, _ = pi

    def broken(records: Iterable[Any]) -> Iterator[str]:
        yield "research_id\n"
        raise ValueError("Augusta Lovelace")  # a message that must not reach the export row

    monkeypatch.setitem(LINES, "csv", broken)
    export_id = request_export(client, study, django_capture_on_commit_callbacks)["id"]

    with pytest.raises(ValueError, match="Augusta"):
        deidentified_export_task(**queued[0])

    status = client.get(f"{EXPORTS}{export_id}/").json()
    assert (status["status"], status["error"]) == ("failed", "ValueError")
    assert "Augusta" not in json.dumps(status)
    assert sealed_files(export_dir) == []


def test_a_redelivered_task_does_not_build_twice(
    pi: tuple[APIClient, User],
    study: Study,
    export_dir: Path,
    queued: list[dict[str, Any]],
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, _ = pi
    request_export(client, study, django_capture_on_commit_callbacks)

    assert deidentified_export_task(**queued[0]) == "ready"
    (path,) = sealed_files(export_dir)
    sealed = path.read_bytes()
    assert deidentified_export_task(**queued[0]) == "ready"
    assert path.read_bytes() == sealed


def test_a_tampered_file_is_never_served_as_a_dataset(
    pi: tuple[APIClient, User],
    study: Study,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, _ = pi
    run_tasks_at_once(monkeypatch)
    export_id = request_export(client, study, django_capture_on_commit_callbacks)["id"]
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
    study: Study,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, _ = pi
    run_tasks_at_once(monkeypatch)
    download = f"{EXPORTS}{request_export(client, study, django_capture_on_commit_callbacks)['id']}/download/"

    def retired(community: str, version: int) -> AESGCM:
        raise KeyDestroyed(f"data key v{version} of {community} is gone")

    monkeypatch.setattr("services.exports.selectors.read_key", retired)
    gone = client.get(download)
    for path in sealed_files(export_dir):
        path.unlink()
    missing = client.get(download)

    assert (gone.status_code, gone.json()["code"]) == (410, "export_key_retired")
    assert (missing.status_code, missing.json()["code"]) == (404, "export_file_missing")


# --- sealing: chunked AES-GCM bound to the community and the export --------------------------------


def seal(data: bytes, *, chunk_bytes: int = 16) -> bytes:
    sink = io.BytesIO()
    aad = file_aad(community="alpha", export_id="export-1", key_version=3)
    writer = SealedWriter(sink, cipher=AESGCM(KEY), key_version=3, aad=aad, chunk_bytes=chunk_bytes)
    for start in range(0, len(data), 7):
        writer.write(data[start : start + 7])
    writer.close()
    return sink.getvalue()


def unseal(sealed: bytes, *, community: str = "alpha", export_id: str = "export-1") -> bytes:
    source = io.BytesIO(sealed)
    aad = file_aad(community=community, export_id=export_id, key_version=read_key_version(source))
    return b"".join(open_chunks(source, cipher=AESGCM(KEY), aad=aad))


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2000), chunk_bytes=st.integers(min_value=1, max_value=300))
def test_sealing_round_trips_whatever_the_chunk_size(data: bytes, chunk_bytes: int) -> None:
    sealed = seal(data, chunk_bytes=chunk_bytes)

    assert unseal(sealed) == data
    assert len(sealed) == 9 + (max(1, -(-len(data) // chunk_bytes))) * 32 + len(data)


def chunks_of(sealed: bytes) -> tuple[bytes, list[bytes]]:
    header, rest, chunks = sealed[:9], sealed[9:], []
    while rest:
        length = int.from_bytes(rest[:4], "big")
        chunks.append(rest[: 4 + length])
        rest = rest[4 + length :]
    return header, chunks


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda header, chunks: header + b"".join(chunks[:-1]), id="last chunk dropped"),
        pytest.param(lambda header, chunks: header + b"".join([chunks[1], chunks[0], *chunks[2:]]), id="reordered"),
        pytest.param(lambda header, chunks: header + b"".join(chunks[1:]), id="first chunk dropped"),
        pytest.param(lambda header, chunks: header + b"".join(chunks) + chunks[0], id="data after the end"),
        pytest.param(lambda header, chunks: header + b"".join(chunks)[:-1], id="cut short"),
        pytest.param(lambda header, chunks: header[:5] + b"\x00\x00\x00\x04" + b"".join(chunks), id="key version"),
        pytest.param(lambda header, chunks: b"NOPE!" + header[5:] + b"".join(chunks), id="not sealed"),
        pytest.param(lambda header, chunks: header + b"\xff\xff\xff\xff" + b"".join(chunks), id="huge length"),
    ],
)
def test_a_tampered_sealed_file_does_not_open(tamper: Callable[[bytes, list[bytes]], bytes]) -> None:
    header, chunks = chunks_of(seal(b"research_id,sex\nR-1,female\nR-2,male\n" * 3))
    assert len(chunks) > 3

    with pytest.raises(CiphertextIntegrityError):
        unseal(tamper(header, chunks))


def test_a_sealed_file_opens_only_for_its_own_export() -> None:
    sealed = seal(b"R-1,female\n")

    with pytest.raises(CiphertextIntegrityError):
        unseal(sealed, export_id="export-2")
    with pytest.raises(CiphertextIntegrityError):
        unseal(sealed, community="beta")


def test_a_closed_writer_takes_no_more_data() -> None:
    writer = SealedWriter(io.BytesIO(), cipher=AESGCM(KEY), key_version=1, aad=b"x", chunk_bytes=8)
    writer.close()
    writer.close()

    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")
    with pytest.raises(ValueError, match="chunk size"):
        SealedWriter(io.BytesIO(), cipher=AESGCM(KEY), key_version=1, aad=b"x", chunk_bytes=0)


# --- storage ----------------------------------------------------------------------------------------

KEY_NAME = storage_key(community="alpha", export_id=str(uuid.UUID(int=7)), extension="csv")


def interrupted_write(storage: LocalExportStorage | S3ExportStorage, key: str) -> None:
    with storage.writer(key) as sink:
        sink.write(b"half a file")
        raise RuntimeError("worker died")


def test_local_storage_writes_atomically_with_private_modes(tmp_path: Path) -> None:
    storage = LocalExportStorage(tmp_path / "exports")

    with pytest.raises(RuntimeError, match="worker died"):
        interrupted_write(storage, KEY_NAME)
    assert sealed_files(tmp_path) == []
    with pytest.raises(ExportFileMissing):
        storage.reader(KEY_NAME)

    with storage.writer(KEY_NAME) as sink:
        sink.write(b"sealed bytes")
    source = storage.reader(KEY_NAME)
    assert source.read() == b"sealed bytes"
    source.close()
    path = tmp_path / "exports" / KEY_NAME
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "exports").stat().st_mode & 0o777) == "0o700"
    storage.delete(KEY_NAME)
    assert not path.exists()


@pytest.mark.parametrize("key", ["../alpha/x.csv.sealed", "alpha/../../etc/passwd", "/abs/path", "alpha/x.csv"])
def test_storage_keys_cannot_leave_their_folder(key: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="storage key"):
        LocalExportStorage(tmp_path).reader(key)
    with pytest.raises(ValueError, match="storage key"):
        storage_key(community="alpha/..", export_id="x", extension="csv")


class FakeS3:
    """The four multipart calls and get/delete, in memory (what S3ExportStorage uses of boto3's client)."""

    class exceptions:  # noqa: N801 - boto3's attribute name
        class NoSuchKey(Exception):
            pass

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.aborted: list[str] = []

    def create_multipart_upload(self, *, Bucket: str, Key: str) -> dict[str, str]:  # noqa: N803
        upload_id = f"upload-{len(self.uploads)}"
        self.uploads[upload_id] = {}
        return {"UploadId": upload_id}

    def upload_part(self, *, Bucket: str, Key: str, UploadId: str, PartNumber: int, Body: bytes) -> dict[str, str]:  # noqa: N803
        self.uploads[UploadId][PartNumber] = Body
        return {"ETag": f"etag-{PartNumber}"}

    def complete_multipart_upload(
        self,
        *,
        Bucket: str,  # noqa: N803
        Key: str,  # noqa: N803
        UploadId: str,  # noqa: N803
        MultipartUpload: dict[str, Any],  # noqa: N803
    ) -> None:
        parts = self.uploads.pop(UploadId)
        assert [part["PartNumber"] for part in MultipartUpload["Parts"]] == sorted(parts)
        self.objects[f"{Bucket}/{Key}"] = b"".join(parts[number] for number in sorted(parts))

    def abort_multipart_upload(self, *, Bucket: str, Key: str, UploadId: str) -> None:  # noqa: N803
        self.uploads.pop(UploadId)
        self.aborted.append(Key)

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        if f"{Bucket}/{Key}" not in self.objects:
            raise self.exceptions.NoSuchKey(Key)
        return {"Body": io.BytesIO(self.objects[f"{Bucket}/{Key}"])}

    def delete_object(self, *, Bucket: str, Key: str) -> None:  # noqa: N803
        self.objects.pop(f"{Bucket}/{Key}", None)


def test_s3_storage_uploads_in_parts_and_streams_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.exports.storage.S3_PART_BYTES", 10)
    client = FakeS3()
    storage = S3ExportStorage(bucket="exports-bucket", prefix="deid/", client=client)

    with storage.writer(KEY_NAME) as sink:
        for _ in range(5):
            sink.write(b"0123456")
    with pytest.raises(RuntimeError, match="worker died"):
        interrupted_write(storage, KEY_NAME.replace("alpha", "beta"))

    assert client.objects == {f"exports-bucket/deid/{KEY_NAME}": b"0123456" * 5}
    assert client.aborted == ["deid/" + KEY_NAME.replace("alpha", "beta")]
    assert storage.reader(KEY_NAME).read() == b"0123456" * 5
    storage.delete(KEY_NAME)
    with pytest.raises(ExportFileMissing):
        storage.reader(KEY_NAME)


def test_an_empty_s3_upload_still_has_one_part() -> None:
    client = FakeS3()
    storage = S3ExportStorage(bucket="b", client=client)

    with storage.writer(KEY_NAME):
        pass

    assert client.objects == {f"b/{KEY_NAME}": b""}


def test_the_storage_backend_comes_from_settings(settings: Settings, tmp_path: Path) -> None:
    settings.DEIDENTIFIED_EXPORT_STORAGE, settings.DEIDENTIFIED_EXPORT_DIR = "local", tmp_path
    assert isinstance(get_storage(), LocalExportStorage)

    settings.DEIDENTIFIED_EXPORT_STORAGE, settings.AWS_S3_BUCKET = "s3", "phi-exports"
    storage = get_storage()
    assert isinstance(storage, S3ExportStorage)
    assert storage.bucket == "phi-exports"

    settings.AWS_S3_BUCKET = ""
    with pytest.raises(Exception, match="AWS_S3_BUCKET"):
        get_storage()
    settings.DEIDENTIFIED_EXPORT_STORAGE = "ftp"
    with pytest.raises(Exception, match="local or s3"):
        get_storage()


def test_no_plaintext_is_written_while_building(
    pi: tuple[APIClient, User],
    study: Study,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    client, _ = pi
    run_tasks_at_once(monkeypatch)
    written: list[bytes] = []
    real_fdopen = os.fdopen

    def recording_fdopen(descriptor: int, *args: Any, **kwargs: Any) -> Any:
        handle = real_fdopen(descriptor, *args, **kwargs)
        original_write = handle.write

        def write(data: bytes) -> int:
            written.append(bytes(data))
            return int(original_write(data))

        handle.write = write
        return handle

    monkeypatch.setattr("services.exports.storage.os.fdopen", recording_fdopen)
    request_export(client, study, django_capture_on_commit_callbacks, "jsonl")

    everything = b"".join(written)
    assert everything.startswith(b"CGWX1")
    for readable in (b"research_id", b"90+", b"2345-7", b"R-"):
        assert readable not in everything
