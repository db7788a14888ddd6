"""Offboarding archives before it shreds, purging drops only what is archived, and both are on the platform's record."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django_tenants.utils import schema_context, schema_exists

from core.errors import Conflict
from security.audit.archives import ArchiveError
from tenants.lifecycle import Purged, communities_purge_offboarded, community_offboard
from tenants.models import Community, CommunityStatus
from tests.support.audit import chained_events
from tests.support.offboarding import community_with_a_trail, stored_archive
from vault.models import DataKey

LATER = datetime.timedelta(days=31)


@pytest.fixture
def gamma(db: None, settings: Any, tmp_path: Path) -> Community:
    """Community gamma with a trail, an archive store of this test's own, a 30-day grace period."""
    settings.AUDIT_ARCHIVE_DIR = tmp_path / "archives"
    settings.OFFBOARD_GRACE_DAYS = 30
    return community_with_a_trail("gamma").community


def platform_events(action: str) -> list[tuple[str, str, str, list[str]]]:
    events = chained_events().filter(action=action).order_by("sequence")
    return [(event.resource_type, event.resource_id, event.outcome, event.reasons) for event in events]


def test_offboarding_archives_first_and_records_the_archive(gamma: Community) -> None:
    community_offboard(slug="gamma", confirm="gamma", actor_id="operator:test")

    key = f"gamma/{stored_archive('gamma').name}"
    assert platform_events("community.offboard") == [("community", "gamma", "allow", [f"archive:{key}"])]
    with schema_context("gamma"):
        assert not DataKey.objects.exists()


def test_offboarding_changes_nothing_when_the_archive_cannot_be_made(
    gamma: Community, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(**_: Any) -> None:
        raise ArchiveError("the archive store is full")

    monkeypatch.setattr("tenants.lifecycle.audit_archive_create", fail)

    with pytest.raises(Conflict, match="was not offboarded: the archive store is full"):
        community_offboard(slug="gamma", confirm="gamma", actor_id="operator:test")

    assert Community.objects.get(slug="gamma").status == CommunityStatus.ACTIVE
    with schema_context("gamma"):
        assert DataKey.objects.exists()
    assert platform_events("community.offboard") == []


def test_purging_drops_an_archived_schema_and_records_it(gamma: Community) -> None:
    community_offboard(slug="gamma", confirm="gamma", actor_id="operator:test")

    with time_machine.travel(datetime.datetime.now(tz=datetime.UTC) + LATER):
        purged = communities_purge_offboarded(actor_id="operator:test")

    assert purged == Purged(dropped=["gamma"])
    assert not schema_exists("gamma")
    assert platform_events("community.purge") == [("community", "gamma", "allow", [])]


def test_purging_keeps_a_schema_without_its_archive_and_records_the_refusal(gamma: Community) -> None:
    community_offboard(slug="gamma", confirm="gamma", actor_id="operator:test")
    stored_archive("gamma").unlink()

    with time_machine.travel(datetime.datetime.now(tz=datetime.UTC) + LATER):
        purged = communities_purge_offboarded(actor_id="operator:test")

    assert purged == Purged(refused={"gamma": "the archive store holds no archive of gamma"})
    assert schema_exists("gamma")
    assert Community.objects.filter(slug="gamma").exists()
    assert platform_events("community.purge") == [("community", "gamma", "deny", ["archive_unverified"])]


def test_purging_waits_for_the_grace_period(gamma: Community) -> None:
    community_offboard(slug="gamma", confirm="gamma", actor_id="operator:test")

    assert communities_purge_offboarded(actor_id="operator:test") == Purged()
    assert schema_exists("gamma")
