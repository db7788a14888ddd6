"""Error codes every research app shares: optimistic concurrency and the audited miss."""

from __future__ import annotations

from enum import StrEnum


class RecordErrorCode(StrEnum):
    """Why a read or an update of a record was refused."""

    NOT_FOUND = "not_found"
    IF_MATCH_REQUIRED = "if_match_required"
    IF_MATCH_WILDCARD = "if_match_wildcard"
    EDIT_CONFLICT = "edit_conflict"
    INVALID_BODY = "invalid"
    NOT_IN_COMMUNITY = "not_in_community"  # a field names a record this community does not have
    OUT_OF_RANGE = "out_of_range"  # a number the data cannot hold
    LISTED_TWICE = "listed_twice"  # a list naming one item twice
    IN_THE_FUTURE = "future"  # a moment that has not happened yet (PastDateField's code too)
    APPROVAL_REQUIRED = "approval_required"  # a study made active without its IRB approval
