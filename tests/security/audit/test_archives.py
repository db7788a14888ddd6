"""Offboarding archives: the whole trail in, sealed under the archive key, opened only whole and as its community."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from security.audit.archives import ArchiveError, audit_archive_create, audit_archive_open, audit_archive_verify
from security.audit.offline_archive import verify_archive
from services.accounting.actions import accounting_request_open, accounting_request_provide, recorded_disclosure_record
from services.accounting.models import Suspension
from tenants.lifecycle import community_create
from tenants.models import Community
from tests.factories import ParticipantFactory
from tests.support.audit import recorded
from tests.support.offboarding import Trail, auditor_keys, community_with_a_trail, stored_archive


@pytest.fixture
def trail(db: None, settings: Any, tmp_path: Path) -> Trail:
    """Community gamma with a trail, and an archive store of this test's own."""
    settings.AUDIT_ARCHIVE_DIR = tmp_path / "archives"
    return community_with_a_trail("gamma")


def test_an_archive_holds_the_log_its_checkpoints_and_the_accounting_and_verifies(trail: Trail, tmp_path: Path) -> None:
    archive = audit_archive_create(community="gamma")
    opened = audit_archive_open(community="gamma", to=tmp_path / "opened")

    assert opened.key == archive.key
    assert sorted(path.name for path in (tmp_path / "opened").iterdir()) == [
        "accounting-records.json",
        "archive.manifest.json",
        "audit-keys.pem",
        "audit.jsonl",
        "audit.jsonl.manifest.json",
        "checkpoints.jsonl",
        "disclosures.json",
        "purge-statements.jsonl",
    ]
    manifest = archive.manifest
    assert (manifest["community"], manifest["events"], manifest["head_sequence"]) == ("gamma", 3, 3)
    assert (manifest["checkpoints"], manifest["participants"], manifest["disclosures"]) == (2, 1, 2)
    assert manifest["retention_days"] >= 6 * 366
    assert verify_archive(tmp_path / "opened", auditor_keys(tmp_path, "gamma")).intact
    assert audit_archive_verify(community="gamma") == ""


def test_the_sealed_archive_shows_nothing_in_clear(trail: Trail) -> None:
    audit_archive_create(community="gamma")

    sealed = stored_archive("gamma").read_bytes()

    assert trail.participant.pseudonym.encode() not in sealed
    assert trail.recipient.email.encode() not in sealed
    assert b"participant.read" not in sealed
    assert stored_archive("gamma").stat().st_mode & 0o777 == 0o400


def test_an_archive_opens_only_as_the_community_it_was_sealed_for(trail: Trail, settings: Any, tmp_path: Path) -> None:
    audit_archive_create(community="gamma")
    moved = Path(settings.AUDIT_ARCHIVE_DIR) / "delta" / stored_archive("gamma").name
    moved.parent.mkdir()
    moved.write_bytes(stored_archive("gamma").read_bytes())

    with pytest.raises(ArchiveError, match="does not open with the archive key for this community"):
        audit_archive_open(community="delta", to=tmp_path / "opened")


def test_an_archive_cut_short_does_not_open(trail: Trail, tmp_path: Path) -> None:
    audit_archive_create(community="gamma")
    path = stored_archive("gamma")
    path.chmod(0o600)
    path.write_bytes(path.read_bytes()[:-20])

    with pytest.raises(ArchiveError, match="cut short"):
        audit_archive_open(community="gamma", to=tmp_path / "opened")
    assert "cut short" in audit_archive_verify(community="gamma")


def test_no_archive_is_said_so(db: None, settings: Any, tmp_path: Path) -> None:
    settings.AUDIT_ARCHIVE_DIR = tmp_path / "archives"

    assert audit_archive_verify(community="gamma") == "the archive store holds no archive of gamma"


def test_opening_refuses_a_directory_that_is_not_empty(trail: Trail, tmp_path: Path) -> None:
    audit_archive_create(community="gamma")
    (tmp_path / "opened").mkdir()
    (tmp_path / "opened" / "audit.jsonl").write_text("mine")

    with pytest.raises(ArchiveError, match="is not empty"):
        audit_archive_open(community="gamma", to=tmp_path / "opened")


def test_a_newer_archive_covers_events_the_older_one_missed(trail: Trail, tmp_path: Path) -> None:
    first = audit_archive_create(community="gamma")
    with schema_context("gamma"):
        recorded(action="auth.login", outcome="allow", actor_id="someone")
    stale = audit_archive_verify(community="gamma")

    second = audit_archive_create(community="gamma")

    assert "the schema up to #4" in stale
    assert second.key > first.key
    assert second.manifest["head_sequence"] == 4
    assert audit_archive_verify(community="gamma") == ""


def test_the_accounting_names_each_disclosure_with_its_recipient(trail: Trail, tmp_path: Path) -> None:
    audit_archive_create(community="gamma")
    audit_archive_open(community="gamma", to=tmp_path / "opened")

    accounting = json.loads((tmp_path / "opened" / "disclosures.json").read_text())

    assert accounting["type"] == "audit-archive-accounting/v1"
    (entries,) = accounting["participants"].values()
    assert [entry["audit_sequence"] for entry in entries] == [2, 3]
    recipient = entries[0]["recipient"]
    assert {name: recipient[name] for name in ("user_id", "email", "roles")} == {
        "user_id": str(trail.recipient.pk),
        "email": trail.recipient.email,
        "roles": ["principal_investigator"],
    }


def test_the_archive_keeps_the_accountings_requests_copies_suspensions_and_recorded_disclosures(
    trail: Trail, tmp_path: Path
) -> None:
    now = timezone.now()
    with schema_context("gamma"):
        recorded_disclosure_record(
            participant=trail.participant,
            disclosed_at=now - timedelta(days=3),
            recipient_name="Dr. Mary Mallon",
            recipient_organisation="State Department of Health",
            description="Test results, reported by fax",
            purpose_statement="A public health report required by state law.",
            actor_id="operator:test",
        )
        Suspension.objects.create(
            agency="Office of the Inspector General",
            official="Special Agent Ness",
            form="written",
            statement="An investigation; the accounting would impede it.",
            starts_at=now - timedelta(days=1),
            ends_at=now + timedelta(days=60),
            recorded_by="operator:test",
        )
        request = accounting_request_open(participant=trail.participant, requester="by letter", actor_id="op:test")
        copy = accounting_request_provide(request=request, actor_id="operator:test")

    audit_archive_create(community="gamma")
    audit_archive_open(community="gamma", to=tmp_path / "opened")
    records = json.loads((tmp_path / "opened" / "accounting-records.json").read_text())
    accounting = json.loads((tmp_path / "opened" / "disclosures.json").read_text())

    assert records["community"] == "gamma"
    [kept] = records["copies"]
    assert (kept["content"], kept["sha256"]) == (copy.content, copy.sha256)
    assert [row["pseudonym"] for row in records["requests"]] == [trail.participant.pseudonym]
    assert [row["agency"] for row in records["suspensions"]] == ["Office of the Inspector General"]
    assert [row["recipient_name"] for row in records["recorded_disclosures"]] == ["Dr. Mary Mallon"]
    entries = accounting["participants"][trail.participant.pseudonym]
    assert [entry["audit_sequence"] for entry in entries if entry["source"] != "recorded"] == [2, 3]
    assert [entry["recipient"]["name"] for entry in entries if entry["source"] == "recorded"] == ["Dr. Mary Mallon"]
    assert verify_archive(tmp_path / "opened", auditor_keys(tmp_path, "gamma")).intact


def test_a_participant_with_only_a_recorded_disclosure_is_in_the_archives_accounting(
    db: None, settings: Any, tmp_path: Path
) -> None:
    settings.AUDIT_ARCHIVE_DIR = tmp_path / "archives"
    community_create(slug="delta", name="Delta", domain="delta.localhost", actor_id="operator:test")
    participant = ParticipantFactory.create(community=Community.objects.get(slug="delta"))
    with schema_context("delta"):
        recorded_disclosure_record(
            participant=participant,
            disclosed_at=timezone.now() - timedelta(days=1),
            recipient_name="Records clerk",
            recipient_organisation="County Court",
            description="The participant's record, under subpoena",
            purpose_statement="A court order.",
            actor_id="operator:test",
        )

    audit_archive_create(community="delta")
    audit_archive_open(community="delta", to=tmp_path / "opened")
    accounting = json.loads((tmp_path / "opened" / "disclosures.json").read_text())

    [entry] = accounting["participants"][participant.pseudonym]
    assert (entry["source"], entry["recipient"]["organisation"]) == ("recorded", "County Court")
    assert verify_archive(tmp_path / "opened", auditor_keys(tmp_path, "delta")).intact


def test_a_copy_rewritten_in_the_database_does_not_pass_into_an_archive(trail: Trail) -> None:
    with schema_context("gamma"):
        request = accounting_request_open(participant=trail.participant, requester="by letter", actor_id="op:test")
        copy = accounting_request_provide(request=request, actor_id="operator:test")
        with connection.cursor() as cursor:  # the tables' owner, its guard switched off
            cursor.execute("ALTER TABLE accounting_providedaccounting DISABLE TRIGGER ALL")
            cursor.execute("UPDATE accounting_providedaccounting SET content = %s WHERE id = %s", ["{}", copy.pk])
            cursor.execute("ALTER TABLE accounting_providedaccounting ENABLE TRIGGER ALL")

    with pytest.raises(ArchiveError, match="differs from its SHA-256"):
        audit_archive_create(community="gamma")
