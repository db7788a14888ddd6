"""Error codes of break-glass access."""

from __future__ import annotations

from enum import StrEnum


class BreakGlassErrorCode(StrEnum):
    """Why opening, revoking or reviewing a grant was refused."""

    NOT_FOUND = "not_found"  # no such grant, or no such participant or study to open one over: a plain miss
    ALREADY_REVIEWED = "already_reviewed"
    SELF_REVIEW = "self_review"  # nobody reviews their own grant, whatever roles they hold
    STILL_ACTIVE = "grant_still_active"  # a grant is reviewed once it has ended (expired or revoked)
    ALREADY_ENDED = "grant_already_ended"  # an expired or revoked grant cannot be revoked again
    INVALID_FILTER = "invalid_filter"
    INVALID_FORMAT = "invalid_format"
    EXACTLY_ONE = "exactly_one"  # a grant names exactly one of a participant and a study  # the queue is json or csv
