"""Issue 16 item 4: the downloaded file is the file the officer approved.

Before the fix every build of an export wrote the same storage key and saved
its row unconditionally, and the download streamed whatever the key held: a
redelivered message (``acks_late``) building concurrently overwrote the file
after the first build had saved its manifest, or after the officer signed it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest
from django_tenants.utils import schema_context
from pytest_django import DjangoCaptureOnCommitCallbacks
from rest_framework.test import APIClient

from core.exports import ExportStatus
from security.models import User
from services.exports import actions, safe_harbor
from services.exports.actions import deidentified_export_build
from services.exports.models import DeidentifiedExport
from services.exports.selectors import ExportDigestMismatch
from services.exports.storage import LocalExportStorage
from services.exports.terminology import VALUE_SET_FILE, resolved_value_set
from services.exports.zip3 import ZIP3_ALLOWLIST_FILE, zip3_table
from services.studies.models import Study
from tests.support.exports import EXPORTS, PHI, ReadyExport, determine, downloaded, request_export, sealed_files


def _stale_copy(export_id: str) -> DeidentifiedExport:
    """The export as a second worker loaded it while it was still pending."""
    export = DeidentifiedExport.objects.select_related("study").get(pk=export_id)
    export.status = ExportStatus.PENDING
    return export


def test_attack_a_redelivered_build_after_the_determination_does_not_replace_the_approved_file(
    pi: tuple[APIClient, User], ready_export: ReadyExport, export_dir: Path
) -> None:
    client, _ = pi
    export_id = ready_export()["id"]
    approved = downloaded(client, export_id)
    with schema_context("alpha"):
        manifest_before = DeidentifiedExport.objects.get(pk=export_id).manifest

        deidentified_export_build(_stale_copy(export_id))  # a second worker that loaded the row while pending

        after = DeidentifiedExport.objects.get(pk=export_id)
    assert after.manifest == manifest_before
    assert downloaded(client, export_id) == approved
    assert len(sealed_files(export_dir)) == 1  # the losing build deleted its own file


def test_attack_two_builds_interleaved_leave_the_file_the_saved_manifest_names(
    pi: tuple[APIClient, User],
    officer: tuple[APIClient, User],
    study: Study,
    export_dir: Path,
    queued: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    """Build A writes its file; build B writes and saves; then A tries to save: A loses, B's file stays."""
    client, _ = pi
    export_id = request_export(client, study, django_capture_on_commit_callbacks)["id"]
    real_write = actions._write
    calls: list[int] = []

    def write_then_race(*args: Any, **kwargs: Any) -> Any:
        written = real_write(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            deidentified_export_build(_stale_copy(export_id))  # B runs to the end while A is between steps
        return written

    monkeypatch.setattr(actions, "_write", write_then_race)
    with schema_context("alpha"):
        deidentified_export_build(_stale_copy(export_id))
        saved = DeidentifiedExport.objects.get(pk=export_id)
    assert saved.status == ExportStatus.READY
    assert determine(officer[0], export_id).status_code == 201

    content = downloaded(client, export_id)

    assert hashlib.sha256(content).hexdigest() == (saved.manifest or {})["sha256"]
    assert len(sealed_files(export_dir)) == 1
    assert saved.storage_key.endswith(".csv.sealed")


def test_a_failing_second_build_does_not_mark_a_ready_export_failed(
    ready_export: ReadyExport, monkeypatch: pytest.MonkeyPatch
) -> None:
    export_id = ready_export()["id"]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("no")

    monkeypatch.setattr(actions, "_write", broken)
    with schema_context("alpha"), pytest.raises(ValueError, match="no"):
        deidentified_export_build(_stale_copy(export_id))
    with schema_context("alpha"):
        assert DeidentifiedExport.objects.get(pk=export_id).status == ExportStatus.READY


def test_attack_a_file_that_is_not_the_one_the_manifest_hashes_is_cut_before_its_end(
    pi: tuple[APIClient, User],
    ready_export: ReadyExport,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An operator swaps in another sealed build of the same export (valid seal, other rows): the stream breaks."""
    client, _ = pi
    export_id = ready_export()["id"]
    full = downloaded(client, export_id)
    (approved_file,) = sealed_files(export_dir)
    monkeypatch.setattr(LocalExportStorage, "delete", lambda self, key: None)  # the losing build's file stays
    with schema_context("alpha"):
        deidentified_export_build(_stale_copy(export_id))
        (other,) = [path for path in sealed_files(export_dir) if path != approved_file]
        DeidentifiedExport.objects.filter(pk=export_id).update(storage_key=f"alpha/{other.name}")

    response = client.get(f"{EXPORTS}{export_id}/download/")
    assert response.status_code == 200
    received: list[bytes] = []
    chunks = iter(response.streaming_content)  # type: ignore[attr-defined]
    with caplog.at_level(logging.ERROR), pytest.raises(ExportDigestMismatch):  # noqa: PT012 - reads up to the cut
        while True:
            received.append(next(chunks))

    assert b"".join(received) != full
    assert len(b"".join(received)) < len(full)
    assert any("sha256" in record.getMessage() and export_id in record.getMessage() for record in caplog.records)
    assert not any(value in record.getMessage() for record in caplog.records for value in PHI)


def test_a_build_reads_its_tables_once_and_the_manifest_names_their_sha256(
    pi: tuple[APIClient, User], ready_export: ReadyExport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16 item 5: the determination covers the tables the file was built with, by their digests."""
    reads: list[str] = []
    real_zip3, real_codes = zip3_table, resolved_value_set

    def counted(name: str, real: Any) -> Any:
        def read() -> Any:
            reads.append(name)
            return real()

        return read

    monkeypatch.setattr(safe_harbor, "zip3_table", counted("zip3", real_zip3))
    monkeypatch.setattr(safe_harbor, "resolved_value_set", counted("codes", real_codes))
    client, _ = pi

    export_id = ready_export()["id"]
    manifest = client.get(f"{EXPORTS}{export_id}/manifest/").json()

    assert sorted(reads) == ["codes", "zip3"]  # once per build, not once per record (the study has two)
    assert manifest["zip3_table"]["sha256"] == hashlib.sha256(ZIP3_ALLOWLIST_FILE.read_bytes()).hexdigest()
    (shipped,) = manifest["value_set"]["files"]
    assert shipped == {
        "file": "value_set.csv",
        "origin": "shipped",
        "sha256": hashlib.sha256(VALUE_SET_FILE.read_bytes()).hexdigest(),
    }
