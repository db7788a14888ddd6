"""Error codes of participants."""

from __future__ import annotations

from enum import StrEnum


class ParticipantErrorCode(StrEnum):
    """Why a participant read or write was refused (never naming the PHI involved)."""

    DUPLICATE_MRN = "duplicate_mrn"
    FILTER_NOT_ALLOWED = "filter_not_allowed"
    INVALID_FORMAT = "invalid_format"
    SEARCH_IN_URL = "search_in_url"
    SEARCH_TERM_REQUIRED = "search_term_required"
