"""Error codes of de-identified exports."""

from __future__ import annotations

from enum import StrEnum


class ExportErrorCode(StrEnum):
    """Why an export request, determination or download was refused, or why a build failed (never PHI)."""

    NOT_FOUND = "not_found"
    STUDY_NOT_FOUND = "study_not_found"
    NOT_READY = "export_not_ready"
    FILE_MISSING = "export_file_missing"
    KEY_RETIRED = "export_key_retired"
    DETERMINATION_REQUIRED = "determination_required"
    ALREADY_DETERMINED = "already_determined"
    MANIFEST_MISMATCH = "manifest_mismatch"
    SELF_DETERMINATION = "self_determination"
    STUDY_TEAM_DETERMINATION = "study_team_determination"
    DETERMINATION_NOT_RECORDED = "determination_not_recorded"
    INVALID_FILTER = "invalid_filter"
