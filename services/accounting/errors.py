"""Error codes of the accounting of disclosures."""

from __future__ import annotations

from enum import StrEnum


class AccountingErrorCode(StrEnum):
    """Why an accounting request, suspension or recorded disclosure was refused."""

    NOT_OPEN = "accounting_request_not_open"
    ALREADY_EXTENDED = "accounting_already_extended"
    EXTENSION_TOO_LATE = "accounting_extension_too_late"
    EXTENSION_TOO_LONG = "accounting_extension_too_long"
    ORAL_SUSPENSION_TOO_LONG = "oral_suspension_too_long"
    INVALID_PERIOD = "invalid_period"
    INVALID_TOLD_ON = "accounting_invalid_told_on"
    ORAL_SUSPENSION_NOT_STARTED = "oral_suspension_not_started"
    ORAL_SUSPENSION_REPEATED = "oral_suspension_repeated"
    COPY_ALTERED = "accounting_copy_altered"
    INVALID_INCLUDE = "invalid_include"
    INVALID_STATUS = "invalid_status"
    NO_COPY = "accounting_not_provided"
