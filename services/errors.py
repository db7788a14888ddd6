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
