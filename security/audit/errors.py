"""Error codes of the audit log: why an access was not served, or an export or purge refused."""

from __future__ import annotations

from enum import StrEnum


class AuditErrorCode(StrEnum):
    """Why the audit log refused (never PHI)."""

    UNAVAILABLE = "audit_unavailable"
    EXPORT_NOT_FOUND = "not_found"
    EXPORT_NOT_READY = "export_not_ready"
    EXPORT_FILE_MISSING = "export_file_missing"
    INSIDE_RETENTION = "inside_retention"
    IN_THE_FUTURE = "future"  # an export period ending after now
    INVALID_PERIOD = "invalid_period"  # an export period that ends before it begins
