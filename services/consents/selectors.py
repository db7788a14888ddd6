"""Reads of consents: the participant they belong to (for the policy) and the consents themselves."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from services.common import not_found_on_record
from services.consents.models import Consent
from services.participants.models import Participant


def access_consent_holder(*, participant_id: uuid.UUID | Any, action: str) -> Participant:
    """The participant whose consents a request reads or writes (ids only: no PHI is loaded).

    Raises:
        NotFound: no such participant here (one of another community included), on record as a refused ``action``.
    """
    found = Participant.objects.filter(pk=participant_id).only("id", "pseudonym", "study_id").first()
    if found is None:
        raise not_found_on_record(action, "participant", participant_id, what="participant")
    return found


def consent_list(*, participant: Participant) -> QuerySet[Consent]:
    """Every consent of ``participant``, withdrawn ones included, oldest first."""
    return Consent.objects.filter(participant=participant)


def consent_qs_select_for_update() -> QuerySet[Consent]:
    """Consents, each row locked for the rest of the transaction (ordered by pk, like every lock)."""
    return Consent.objects.order_by("pk").select_for_update(of=("self",))


def access_consent(*, participant: Participant, consent_id: uuid.UUID | Any, action: str) -> Consent:
    """Consent ``consent_id`` of ``participant``, locked for a change.

    Raises:
        NotFound: no such consent of this participant, on record as a refused ``action``.
    """
    consent = consent_qs_select_for_update().filter(pk=consent_id, participant=participant).first()
    if consent is None:
        raise not_found_on_record(action, "consent", consent_id, what="consent")
    return consent


def policy_attributes(participant: Participant) -> dict[str, Any]:
    """What the policy may know of the consents' holder: the participant and study ids (break-glass scopes)."""
    return {"participant": str(participant.pk), "study": str(participant.study_id)}
