"""The export task: what a refused, a broken or a redelivered build leaves, and that no plaintext is ever written.

The broker is stood in: either the queued messages are kept for the test to run
(``queued``), or a queued export is built at once (``built_at_once``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import Reject
from django_tenants.utils import schema_context
from pytest_django import DjangoCaptureOnCommitCallbacks
from rest_framework.test import APIClient

from core.exports import ExportStatus
from security.models import User
from services.exports.formats import LINES
from services.exports.models import DeidentifiedExport
from services.exports.safe_harbor import RESEARCH_ID_ALPHABET
from services.exports.tasks import deidentified_export_task
from services.studies.models import Study
from tests.support.exports import EXPORTS, ReadyExport, request_export, sealed_files


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


def test_no_plaintext_is_written_while_building(
    ready_export: ReadyExport,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
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
    ready_export("jsonl")

    everything = b"".join(written)
    assert everything.startswith(b"CGWX1")
    for readable in (b"research_id", b'"90+"', b"2345-7"):
        assert readable not in everything
    # A research id whole (R- and 16 of its alphabet): two bytes alone turn up in random ciphertext now and then.
    assert re.search(rb"R-[" + RESEARCH_ID_ALPHABET.encode() + rb"]{16}", everything) is None
