"""AES-256-GCM sealing of one field value, bound to where it belongs.

Format: ``v1.<key version>.<base64url(nonce ‖ ciphertext ‖ tag)>``. The
associated data names the community, the model, the field, the row's id and
the key version, so a ciphertext copied anywhere else fails to open: an
integrity error, never garbage and never a partial value.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import CiphertextIntegrityError

FORMAT_VERSION = "v1"
NONCE_BYTES = 12


class Ciphertext(str):
    """A value already sealed for the database (the only thing encrypted columns accept)."""

    __slots__ = ()


def associated_data(*, community: str, model: str, field: str, row: str, key_version: int) -> bytes:
    """What a ciphertext is bound to."""
    return f"{community}|{model}|{field}|{row}|{key_version}".encode()


def seal(cipher: AESGCM, plaintext: bytes, *, key_version: int, aad: bytes) -> Ciphertext:
    """Encrypt with a fresh random nonce."""
    nonce = os.urandom(NONCE_BYTES)
    body = base64.urlsafe_b64encode(nonce + cipher.encrypt(nonce, plaintext, aad)).decode("ascii")
    return Ciphertext(f"{FORMAT_VERSION}.{key_version}.{body}")


def key_version_of(token: str) -> int:
    """The data key version a ciphertext names (integrity error when malformed)."""
    parts = token.split(".", 2)
    if len(parts) != 3 or parts[0] != FORMAT_VERSION or not parts[1].isdigit():  # noqa: PLR2004 - format fields
        raise CiphertextIntegrityError("not a ciphertext of this service")
    return int(parts[1])


def open_sealed(cipher: AESGCM, token: str, *, aad: bytes) -> bytes:
    """Decrypt, or raise :class:`CiphertextIntegrityError`."""
    try:
        raw = base64.urlsafe_b64decode(token.split(".", 2)[2].encode("ascii"))
        return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError, IndexError) as error:
        raise CiphertextIntegrityError("the ciphertext does not open here") from error
