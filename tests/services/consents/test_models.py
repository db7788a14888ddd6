"""A participant's active consent scopes: a column the database keeps in step with the consents (its trigger)."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from services.consents.models import Consent
from services.participants.models import Participant
from services.participants.selectors import consented
from tenants.models import Community
from tests.factories import ConsentFactory, ParticipantFactory

SIGNED = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)


@pytest.fixture
def participant(alpha: Community) -> Participant:
    return ParticipantFactory.create(community=alpha)


def scopes_of(participant: Participant) -> list[str]:
    with schema_context("alpha"):
        participant.refresh_from_db(fields=["consent_scopes"])
    return list(participant.consent_scopes)


def sign(participant: Participant, *scopes: str) -> Consent:
    with schema_context("alpha"):
        return ConsentFactory.create(participant=participant, scopes=list(scopes), signed_at=SIGNED)


def test_a_new_participant_has_no_scopes_and_a_consent_brings_its_own(participant: Participant) -> None:
    assert scopes_of(participant) == []

    sign(participant, "research_use", "contact")
    sign(participant, "genomic", "research_use")

    assert scopes_of(participant) == ["contact", "genomic", "research_use"]  # distinct, sorted


def test_withdrawing_one_consent_keeps_the_scopes_another_still_covers(participant: Participant) -> None:
    first = sign(participant, "research_use", "contact")
    sign(participant, "research_use")

    with schema_context("alpha"):
        Consent.objects.filter(pk=first.pk).update(withdrawn_at=timezone.now())

    assert scopes_of(participant) == ["research_use"]


def test_the_database_overrides_whatever_the_application_writes_into_the_column(participant: Participant) -> None:
    sign(participant, "contact")

    with schema_context("alpha"):
        Participant.objects.filter(pk=participant.pk).update(consent_scopes=["genomic", "research_use"])
        participant.consent_scopes = ["data_sharing"]
        participant.save()

    assert scopes_of(participant) == ["contact"]


def test_a_consent_written_without_the_application_is_seen_too(participant: Participant) -> None:
    with schema_context("alpha"), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO consents_consent (id, participant_id, scopes, form_version, signed_at, created_at, updated_at)"
            " VALUES (%s, %s, %s, 'v2', now(), now(), now())",
            [uuid.uuid4(), participant.pk, ["data_sharing"]],
        )

    assert scopes_of(participant) == ["data_sharing"]


def test_a_write_from_another_community_s_path_is_still_computed_from_the_participant_s_own_consents(
    beta: Community, participant: Participant
) -> None:
    """An operator in beta's schema writing alpha's rows by name: the triggers read alpha's tables, not beta's."""
    sign(participant, "contact")
    with schema_context("beta"), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE alpha.participants_participant SET consent_scopes = '{}' WHERE id = %s", [participant.pk]
        )
        assert scopes_of(participant) == ["contact"]
        cursor.execute(
            "INSERT INTO alpha.consents_consent (id, participant_id, scopes, form_version, signed_at, created_at,"
            " updated_at) VALUES (%s, %s, %s, 'v2', now(), now(), now())",
            [uuid.uuid4(), participant.pk, ["genomic"]],
        )

    assert scopes_of(participant) == ["contact", "genomic"]


def test_lists_are_narrowed_by_the_column(alpha: Community, beta: Community, participant: Participant) -> None:
    sign(participant, "contact")
    theirs = ParticipantFactory.create(community=beta)
    ConsentFactory.create(community=beta, participant=theirs, scopes=["research_use"], signed_at=SIGNED)

    with schema_context("alpha"):
        assert list(consented(Participant.objects.all(), "research_use")) == []
        assert list(consented(Participant.objects.all(), "contact")) == [participant]
    with schema_context("beta"):
        assert list(consented(Participant.objects.all(), "research_use")) == [theirs]
