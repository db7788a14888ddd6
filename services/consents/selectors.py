"""Reads of consents: the participant they belong to (for the policy) and the consents themselves."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from services.common import access_one, select_for_update
from services.consents.models import Consent
from services.participants.models import Participant


def access_consent_holder(*, participant_id: uuid.UUID | Any, action: str) -> Participant:
    """The participant whose consents a request reads or writes (ids only: no PHI is loaded).

    Raises:
        NotFound: no such participant here (one of another community included), on record as a refused ``action``.
    """
    rows = Participant.objects.only("id", "pseudonym", "study_id")
    return access_one(rows, participant_id, action=action, resource_type="participant", what="participant")


def consent_list(*, participant: Participant) -> QuerySet[Consent]:
    """Every consent of ``participant``, withdrawn ones included, oldest first."""
    return Consent.objects.filter(participant=participant)


def access_consent(*, participant: Participant, consent_id: uuid.UUID | Any, action: str) -> Consent:
    """Consent ``consent_id`` of ``participant``, locked for a change.

    Raises:
        NotFound: no such consent of this participant, on record as a refused ``action``.
    """
    rows = select_for_update(Consent).filter(participant=participant)
    return access_one(rows, consent_id, action=action, resource_type="consent", what="consent")


def policy_attributes(participant: Participant) -> dict[str, Any]:
    """What the policy may know of the consents' holder: the participant and study ids (break-glass scopes)."""
    return {"participant": str(participant.pk), "study": str(participant.study_id)}
