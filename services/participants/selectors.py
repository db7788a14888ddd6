"""Reads of participants: lists narrowed by consent, one participant for a caller, and what the policy may know.

``break_glass_scope_exists`` is also reached from the security package, through
the ``BREAK_GLASS_SCOPE_EXISTS`` setting (security never imports services).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from django.db.models import Model, QuerySet

from core.errors import BadRequest
from policy.decision import Decision
from policy.obligations import REDACT_ALL, apply_conditions
from services.common import access_one, select_for_update
from services.participants.errors import ParticipantErrorCode
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


def break_glass_scope_words(*, scopes: Collection[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """What break-glass grants over ``scopes`` cover, in a compliance officer's words (one query per kind).

    A participant by pseudonym (``one participant, P-…``), a study by its title
    and protocol number (``the study 'Sleep and memory' (protocol SLP-01)``);
    an id this community lacks is left out.
    """
    wanted: dict[str, dict[uuid.UUID, str]] = {"participant": {}, "study": {}}
    for scope, scope_id in scopes:
        key = _uuid(scope_id)
        if key is not None and scope in wanted:
            wanted[scope][key] = scope_id
    words: dict[tuple[str, str], str] = {}
    people = Participant.objects.filter(pk__in=wanted["participant"]).values_list("pk", "pseudonym")
    for pk, pseudonym in people:
        words["participant", wanted["participant"][pk]] = f"one participant, {pseudonym}"
    studies = Study.objects.filter(pk__in=wanted["study"]).values_list("pk", "title", "protocol_number")
    for pk, title, protocol in studies:
        words["study", wanted["study"][pk]] = f"the study '{title}' (protocol {protocol})"
    return words


def participants(
    *, study: uuid.UUID | None = None, mrn: str | None = None, email: str | None = None
) -> QuerySet[Participant]:
    """The community's participants, by study and by exact MRN or email (through their blind indexes)."""
    found = Participant.objects.order_by()
    if study is not None:
        found = found.filter(study_id=study)
    if mrn is not None:
        found = found.filter(blind_index_filter(Participant, "mrn_index", mrn))
    if email is not None:
        found = found.filter(blind_index_filter(Participant, "email_index", email))
    return found


def consented(queryset: QuerySet[M], scope: Any, *, participant_field: str = "pk") -> QuerySet[M]:
    """The policy's ``consent_scope`` condition: rows whose participant's active consents cover ``scope``.

    ``participant_field`` names the participant of another model's rows
    (``"participant"`` for observations).
    """
    column = "consent_scopes" if participant_field == "pk" else f"{participant_field}__consent_scopes"
    return queryset.filter(**{f"{column}__contains": [str(scope)]})


# The row conditions a participant list understands (any other fails closed).
CONDITIONS: Mapping[str, Any] = {"consent_scope": consented}


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


# The fields a search may name, as the refusal names them.
SEARCHABLE = {"mrn": "MRN", "email": "email"}


def participant_list(
    *, decision: Decision, study: uuid.UUID | None = None, mrn: str | None = None, email: str | None = None
) -> QuerySet[Participant]:
    """The participants a list read may show: filtered, then narrowed by the decision's row conditions.

    Raises:
        BadRequest: a search by MRN or email under a decision that redacts that field (the search would be an oracle).
        PolicyUnavailable: a condition this list has no handler for (fail closed).
    """
    redacted = set(decision.obligations.redact)
    for field, value in (("mrn", mrn), ("email", email)):
        if value is not None and {field, REDACT_ALL} & redacted:
            raise BadRequest(
                f"Searching by {SEARCHABLE[field]} needs an unredacted view of it.",
                code=ParticipantErrorCode.FILTER_NOT_ALLOWED,
            )
    found = participants(study=study, mrn=mrn, email=email)
    return apply_conditions(found, decision.obligations.conditions, CONDITIONS)


def access_participant(*, participant_id: uuid.UUID | Any, action: str, for_update: bool = False) -> Participant:
    """The participant ``participant_id`` of this community, for ``action`` (locked when ``for_update``).

    Raises:
        NotFound: no such participant here (one of another community included), on record as a refused ``action``.
    """
    rows = select_for_update(Participant) if for_update else Participant.objects.all()
    return access_one(rows, participant_id, action=action, resource_type="participant", what="participant")
