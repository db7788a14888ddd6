"""Reads of observations: lists narrowed by the participant's consent, one observation for a caller."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet

from policy.decision import Decision
from policy.obligations import apply_conditions
from services.common import access_one
from services.observations.models import Observation
from services.participants.selectors import consented


def _consented(queryset: QuerySet[Observation], scope: Any) -> QuerySet[Observation]:
    return consented(queryset, scope, participant_field="participant")


CONDITIONS: Mapping[str, Any] = {"consent_scope": _consented}


def observation_list(*, decision: Decision, participant: uuid.UUID | None = None) -> QuerySet[Observation]:
    """The observations a list read may show (with their participants): filtered, then narrowed by the conditions.

    Raises:
        PolicyUnavailable: a condition this list has no handler for (fail closed).
    """
    found = Observation.objects.select_related("participant").order_by()
    if participant is not None:
        found = found.filter(participant_id=participant)
    return apply_conditions(found, decision.obligations.conditions, CONDITIONS)


def access_observation(*, observation_id: uuid.UUID | Any, action: str) -> Observation:
    """The observation ``observation_id`` of this community, with its participant, for ``action``.

    Raises:
        NotFound: no such observation here (one of another community included), on record as a refused ``action``.
    """
    rows = Observation.objects.select_related("participant")
    return access_one(rows, observation_id, action=action, resource_type="observation", what="observation")
