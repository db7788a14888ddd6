"""Error codes of consents."""

from __future__ import annotations

from enum import StrEnum


class ConsentErrorCode(StrEnum):
    """Why a consent write was refused."""

    ALREADY_WITHDRAWN = "already_withdrawn"
    NOT_AUTHORIZATION = "consent_not_an_authorization"
    ALREADY_CONFIRMED = "authorization_already_confirmed"
