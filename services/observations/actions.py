"""Writes of observations: recording one about a participant of this community (free text and date encrypted)."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

from django.db import transaction

from services.common import not_in_community
from services.observations.models import Observation
from services.participants.models import Participant


@transaction.atomic
def observation_record(
    *,
    participant: uuid.UUID,
    code_system: str,
    code: str,
    display: str = "",
    value: Decimal | str | None = None,
    unit: str = "",
    effective_date: datetime.date | None = None,
    note: str | None = None,
) -> Observation:
    """Record an observation about ``participant``: a number or a text ``value`` under a code.

    Raises:
        ValidationError: ``participant`` is not a participant of this community.
    """
    holder = Participant.objects.filter(pk=participant).only("id", "pseudonym").first()
    if holder is None:
        raise not_in_community("participant", "participant")
    return Observation.objects.create(
        participant=holder,
        code_system=code_system,
        code=code,
        display=display,
        value_number=value if isinstance(value, Decimal) else None,
        value_text=value if isinstance(value, str) else None,
        unit=unit,
        effective_date=effective_date,
        note=note,
    )
