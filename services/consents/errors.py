"""Error codes of consents."""

from __future__ import annotations

from enum import StrEnum


class ConsentErrorCode(StrEnum):
    """Why a consent write was refused."""

    ALREADY_WITHDRAWN = "already_withdrawn"
