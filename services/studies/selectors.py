"""Reads of studies: the community's list, and one study for a caller (scoped, locked, an audited miss)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from core.errors import BadRequest
from services.common import not_found_on_record
from services.studies.errors import StudyErrorCode
from services.studies.models import Study, StudyStatus


def study_list(*, status: str | None = None) -> QuerySet[Study]:
    """The community's studies with their teams, optionally of one status.

    Raises:
        BadRequest: ``status`` is not a study status.
    """
    studies = Study.objects.prefetch_related("team").order_by()
    if status is None:
        return studies
    if status not in StudyStatus.values:
        raise BadRequest(f"status must be one of: {', '.join(StudyStatus.values)}", code=StudyErrorCode.INVALID_FILTER)
    return studies.filter(status=status)


def study_qs_select_for_update() -> QuerySet[Study]:
    """Studies, each row locked for the rest of the transaction (ordered by pk, like every lock)."""
    return Study.objects.order_by("pk").select_for_update(of=("self",))


def access_study(*, study_id: uuid.UUID | Any, action: str, for_update: bool = False) -> Study:
    """The study ``study_id`` of this community, for ``action`` (locked when ``for_update``).

    Raises:
        NotFound: no such study here (one of another community included), on record as a refused ``action``.
    """
    studies = study_qs_select_for_update() if for_update else Study.objects.all()
    found = studies.filter(pk=study_id).first()
    if found is None:
        raise not_found_on_record(action, "study", study_id, what="study")
    return found


def policy_attributes(study: Study) -> dict[str, Any]:
    """What the policy may know of a study: its id (break-glass grants may name it)."""
    return {"study": str(study.pk)}
