"""Reads of participants that other packages reach through settings (no import of services from them)."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from django.db.models import Model, QuerySet

from services.participants.models import Participant
from services.studies.models import Study
from vault.fields import blind_index_filter

M = TypeVar("M", bound=Model)


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


def participants(*, study: uuid.UUID | None = None, mrn: str | None = None) -> QuerySet[Participant]:
    """The community's participants, by study and by exact MRN (through its blind index)."""
    found = Participant.objects.order_by()
    if study is not None:
        found = found.filter(study_id=study)
    if mrn is not None:
        found = found.filter(blind_index_filter(Participant, "mrn_index", mrn))
    return found


def consented(queryset: QuerySet[M], scope: Any, *, participant_field: str = "pk") -> QuerySet[M]:
    """The policy's ``consent_scope`` condition: rows whose participant's active consents cover ``scope``.

    ``participant_field`` names the participant of another model's rows
    (``"participant"`` for observations).
    """
    column = "consent_scopes" if participant_field == "pk" else f"{participant_field}__consent_scopes"
    return queryset.filter(**{f"{column}__contains": [str(scope)]})


def policy_attributes(participant: Participant) -> dict[str, Any]:
    """What the policy may know of a participant: ids and the scopes consented to (no PHI)."""
    return {
        "participant": str(participant.pk),
        "study": str(participant.study_id),
        "consent_scopes": list(participant.consent_scopes),
    }


def mrn_taken(mrn: str, *, other_than: uuid.UUID | None = None) -> bool:
    """Whether another participant of this community has this MRN."""
    found = participants(mrn=mrn)
    return (found.exclude(pk=other_than) if other_than is not None else found).exists()
