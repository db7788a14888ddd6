"""Writes of participants: enrolment and update, each one transaction, the MRN unique in the community.

PHI is set on the model's encrypted fields, which seal it under the
community's data key before anything reaches the database.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from core.errors import Conflict
from services.common import not_in_community
from services.participants.errors import ParticipantErrorCode
from services.participants.models import Participant
from services.participants.selectors import mrn_taken
from services.studies.models import Study


@transaction.atomic
def _participant_save(participant: Participant, changes: Mapping[str, Any]) -> Participant:
    """Apply validated values (study checked, MRN unique in the community) and save."""
    values = dict(changes)
    if "study" in values:
        study = Study.objects.filter(pk=values.pop("study")).first()
        if study is None:
            raise not_in_community("study", "study")
        participant.study = study
    mrn = values.get("mrn")
    other_than = None if participant._state.adding else participant.pk
    if mrn and mrn_taken(mrn, other_than=other_than):
        raise Conflict("Another participant of this community has that MRN.", code=ParticipantErrorCode.DUPLICATE_MRN)
    for name, value in values.items():
        setattr(participant, name, value)
    participant.save()
    return participant


def participant_enroll(
    *,
    study: uuid.UUID,
    given_name: str,
    family_name: str,
    date_of_birth: datetime.date,
    sex: str | None = None,
    mrn: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    street_address: str | None = None,
    city: str | None = None,
    state: str | None = None,
    postal_code: str | None = None,
) -> Participant:
    """Enrol a participant in ``study`` under a new random pseudonym.

    Raises:
        ValidationError: ``study`` is not a study of this community.
        Conflict: another participant of the community has that MRN.
    """
    changes = {
        "study": study,
        "given_name": given_name,
        "family_name": family_name,
        "date_of_birth": date_of_birth,
        "sex": sex,
        "mrn": mrn,
        "email": email,
        "phone": phone,
        "street_address": street_address,
        "city": city,
        "state": state,
        "postal_code": postal_code,
    }
    return _participant_save(Participant(), changes)


def participant_update(*, participant: Participant, changes: Mapping[str, Any]) -> Participant:
    """Change the fields in ``changes`` (PHI, or the study).

    Raises:
        ValidationError: a new ``study`` that is not a study of this community.
        Conflict: another participant of the community has that MRN.
    """
    return _participant_save(participant, changes)
