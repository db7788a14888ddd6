"""Reads of studies: the community's list, and one study for a caller (scoped, locked, an audited miss)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from core.errors import BadRequest
from services.common import access_one, select_for_update
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


def access_study(*, study_id: uuid.UUID | Any, action: str, for_update: bool = False) -> Study:
    """The study ``study_id`` of this community, for ``action`` (locked when ``for_update``).

    Raises:
        NotFound: no such study here (one of another community included), on record as a refused ``action``.
    """
    studies = select_for_update(Study) if for_update else Study.objects.all()
    return access_one(studies, study_id, action=action, resource_type="study", what="study")


def policy_attributes(study: Study) -> dict[str, Any]:
    """What the policy may know of a study: its id (break-glass grants may name it)."""
    return {"study": str(study.pk)}
