"""Migration 0002 seals the free text of observations already stored, and can be reversed.

Each test migrates alpha's schema inside its own transaction (PostgreSQL's
DDL is transactional), so the schema is back at the newest state afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_tenants.utils import schema_context

from services.observations.models import Observation
from tenants.models import Community, CommunityStatus
from tests.factories import ParticipantFactory
from vault.models import DataKey

BEFORE = ("observations", "0001_initial")
AFTER = ("observations", "0002_encrypt_free_text")
DISPLAY = "Tremor Wilhelmina noticed at the bakery"
TEXT = "Her brother Ansgar has had the same tremor since 1988"


def _migrate(target: tuple[str, str]) -> Apps:
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return executor.loader.project_state(target).apps


def _stored(observation_id: Any) -> tuple[str | None, str | None]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT display, value_text FROM observations_observation WHERE id = %s", [observation_id])
        display, value_text = cursor.fetchone()
    return display, value_text


@pytest.fixture
def plaintext_rows(alpha: Community) -> Iterator[tuple[Any, Any]]:
    """Alpha's schema as before 0002, with a text observation and a numeric one stored in clear."""
    with schema_context("alpha"):
        participant = ParticipantFactory.create(community=alpha)
        old = _migrate(BEFORE).get_model("observations", "Observation")
        common = {"participant_id": participant.pk, "code_system": "http://loinc.org", "unit": ""}
        text = old.objects.create(code="94500-6", display=DISPLAY, value_text=TEXT, **common)
        number = old.objects.create(code="8867-4", display="", value_text="", value_number=61, **common)
        with connection.cursor() as cursor:  # as if committed: no deferred foreign-key check left to hold ALTER up
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        yield text.pk, number.pk
        _migrate(AFTER)


@pytest.mark.django_db
def test_free_text_stored_before_is_sealed_in_place_and_reads_back_the_same(plaintext_rows: tuple[Any, Any]) -> None:
    text, number = plaintext_rows
    assert _stored(text) == (DISPLAY, TEXT)  # the attacker's view before: a database reader sees it all

    _migrate(AFTER)

    display, value_text = _stored(text)
    assert display is not None
    assert value_text is not None
    assert DISPLAY not in display
    assert TEXT not in value_text
    assert "Ansgar" not in value_text
    assert _stored(number)[1] is None
    sealed = Observation.objects.get(pk=text)
    assert (sealed.display, sealed.value_text) == (DISPLAY, TEXT)
    unsealed = Observation.objects.get(pk=number)
    assert (unsealed.display, unsealed.value_text, unsealed.value_number) == ("", None, Decimal(61))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'alpha' "
            "AND table_name = 'observations_observation' AND column_name LIKE '%%plaintext%%'"
        )
        assert cursor.fetchall() == []


@pytest.mark.django_db
def test_reversing_the_migration_gives_the_text_back_in_clear(plaintext_rows: tuple[Any, Any]) -> None:
    text, _ = plaintext_rows
    _migrate(AFTER)

    _migrate(BEFORE)

    assert _stored(text) == (DISPLAY, TEXT)


@pytest.mark.django_db
def test_text_with_no_key_to_seal_it_stops_the_migration_unless_the_community_was_offboarded(
    plaintext_rows: tuple[Any, Any], alpha: Community
) -> None:
    text, _ = plaintext_rows
    DataKey.objects.all().delete()

    with pytest.raises(RuntimeError, match="holds observations but no data key"):
        _migrate(AFTER)

    Community.objects.filter(pk=alpha.pk).update(status=CommunityStatus.OFFBOARDED)
    _migrate(AFTER)
    assert _stored(text) == (None, None)  # crypto-shredded: the text went with the dropped column
