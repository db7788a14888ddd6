"""Error codes of studies."""

from __future__ import annotations

from enum import StrEnum


class StudyErrorCode(StrEnum):
    """Why a study read or write was refused."""

    STUDY_CLOSED = "study_closed"
    DUPLICATE = "duplicate"
    INVALID_FILTER = "invalid_filter"
