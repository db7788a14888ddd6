"""Errors of the key management app."""

from __future__ import annotations

from enum import StrEnum

from core.errors import ServiceUnavailable


class VaultErrorCode(StrEnum):
    """Why PHI could not be sealed or opened."""

    KEY_SERVICE_UNAVAILABLE = "key_service_unavailable"


class KeyServiceUnavailable(ServiceUnavailable):
    """The key provider cannot be reached (or is sealed) and no cached key may serve: 503, no PHI."""

    def __init__(self, why: str) -> None:
        super().__init__(
            "Protected data cannot be read or written right now; try again shortly.",
            code=VaultErrorCode.KEY_SERVICE_UNAVAILABLE,
        )
        self.why = why


class KeyDestroyed(Exception):
    """The community's key no longer exists (offboarded): its ciphertexts are unreadable by design."""


class CiphertextIntegrityError(Exception):
    """A ciphertext was altered, or moved to another row, field or community. Never returns data."""


class PlaintextRefused(Exception):
    """Something tried to write or query an encrypted column with a plaintext value."""
