"""Fixtures of the export tests: a PI with a fresh second factor, alpha's study, storage and the broker stood in."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings
from rest_framework.test import APIClient

from security.models import User
from services.exports.tasks import deidentified_export_task
from services.studies.models import Study
from tenants.models import Community
from tests.factories import ConsentFactory, ParticipantFactory, StudyFactory
from tests.support.clients import MemberClient
from tests.support.exports import ADA, CONSENTED, GRACE, NOTE, ReadyExport, determine, observe, request_export


@pytest.fixture(autouse=True)
def cells_of_one(settings: Settings) -> None:
    """k = 1 unless a test says otherwise: the fixture study has two people (small cells: ``test_cells.py``)."""
    settings.DEIDENTIFIED_EXPORT_MIN_CELL = 1


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


@pytest.fixture
def study(alpha: Community) -> Study:
    """Alpha's study: Augusta (90+) and Grace (restricted ZIP) consented; one withdrawn, one never asked."""
    study = StudyFactory.create(community=alpha, title="Sleep", protocol_number="SLP-01")
    with schema_context("alpha"):
        augusta = ParticipantFactory.create(study=study, **ADA)
        ConsentFactory.create(participant=augusta, signed_at=timezone.now(), **CONSENTED)
        observe(augusta)
        observe(augusta, code="718-7", value_number=Decimal(13), unit="g/dL", value_text=NOTE)
        observe(augusta, code_system="local", code="MRN0042137")  # not a known code system: dropped
        grace = ParticipantFactory.create(study=study, **GRACE)
        ConsentFactory.create(participant=grace, signed_at=timezone.now(), **CONSENTED)
        observe(grace, effective_date=date(2024, 1, 2), unit="mg per Grace")
        withdrawn = ParticipantFactory.create(study=study, **{**ADA, "given_name": "Withdrawn"})
        ConsentFactory.create(participant=withdrawn, signed_at=timezone.now(), withdrawn_at=timezone.now(), **CONSENTED)
        ParticipantFactory.create(study=study, **{**ADA, "given_name": "Unasked"})
    return study


@pytest.fixture
def officer(member_client: MemberClient) -> tuple[APIClient, User]:
    """A compliance officer of alpha who has just signed in with password and TOTP."""
    return member_client("compliance_officer", second_factor=True)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Stand in for the broker: the messages of queued exports, for the test to run (or run twice)."""
    messages: list[dict[str, Any]] = []
    monkeypatch.setattr(deidentified_export_task, "apply_async", lambda kwargs, **options: messages.append(kwargs))
    return messages


@pytest.fixture
def built_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand in for the broker: a queued export runs at once, through CommunityTask's checks."""

    def run_now(kwargs: dict[str, Any], **options: Any) -> None:
        deidentified_export_task(**kwargs)

    monkeypatch.setattr(deidentified_export_task, "apply_async", run_now)


@pytest.fixture
def ready_export(
    built_at_once: None,
    pi: tuple[APIClient, User],
    officer: tuple[APIClient, User],
    study: Study,
    export_dir: Path,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> ReadyExport:
    """The PI asks for an export of the study, it is built at once and the officer determines it.

    ``(export_format="csv", determined=True)`` -> the 202 body.
    """
    client, _ = pi

    def make(export_format: str = "csv", *, determined: bool = True) -> dict[str, Any]:
        accepted = request_export(client, study, django_capture_on_commit_callbacks, export_format)
        if determined:
            response = determine(officer[0], accepted["id"])
            assert response.status_code == 201, response.content
        return accepted

    return make
