"""Reads of participants that other packages reach through settings (no import of services from them)."""

from __future__ import annotations

import uuid

from services.participants.models import Participant
from services.studies.models import Study


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def break_glass_scope_exists(*, scope: str, scope_id: str) -> bool:
    """Whether a break-glass grant may name this participant or study (it exists in this community)."""
    key = _uuid(scope_id)
    if key is None:
        return False
    if scope == "participant":
        return Participant.objects.filter(pk=key).exists()
    return scope == "study" and Study.objects.filter(pk=key).exists()


def participant_pseudonym(participant_id: str) -> str | None:
    """The pseudonym of a participant of this community, or None."""
    key = _uuid(participant_id)
    if key is None:
        return None
    return Participant.objects.filter(pk=key).values_list("pseudonym", flat=True).first()
