"""Proof at the database: a pg_dump of a community's schema holds ciphertext, no plaintext."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from services.participants.models import Participant
from tenants.lifecycle import community_create
from tenants.models import Community
from tests.vault.test_fields import PHI, enrol
from vault.providers import get_provider


@pytest.fixture
def committed_community(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """A community whose rows are committed, so that pg_dump (another connection) sees them."""
    with django_db_blocker.unblock():
        community_create(slug="dumpcheck", name="Dump check", domain="dumpcheck.localhost", actor_id="operator:test")
        try:
            yield "dumpcheck"
        finally:
            community = Community.objects.get(slug="dumpcheck")
            community._drop_schema(force_drop=True)
            community.delete()
            get_provider().destroy_community_key("dumpcheck")


def test_a_pg_dump_of_the_schema_holds_no_plaintext(committed_community: str) -> None:
    with schema_context(committed_community):
        participant = enrol()
        assert Participant.objects.get(pk=participant.pk).family_name == PHI["family_name"]
    database = settings.DATABASES["default"]

    dump = subprocess.run(  # noqa: S603
        [
            shutil.which("pg_dump") or "/usr/bin/pg_dump",
            "-h",
            database["HOST"] or "127.0.0.1",
            "-U",
            database["USER"] or "postgres",
            "--schema",
            committed_community,
            "--data-only",
            connection.settings_dict["NAME"],
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert "COPY dumpcheck.participants_participant" in dump
    assert "v1." in dump
    for value in PHI.values():
        assert str(value) not in dump
