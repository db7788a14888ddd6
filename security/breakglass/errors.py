"""Error codes of break-glass access."""

from __future__ import annotations

from enum import StrEnum


class BreakGlassErrorCode(StrEnum):
    """Why opening or reviewing a grant was refused."""

    NOT_FOUND = "not_found"  # no such grant, or no such participant or study to open one over: a plain miss
    ALREADY_REVIEWED = "already_reviewed"
    INVALID_FILTER = "invalid_filter"
