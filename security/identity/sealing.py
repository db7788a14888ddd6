"""Sealing small platform secrets (TOTP seeds) and keyed hashes (recovery codes).

Keys are derived from Django's ``SECRET_KEY`` with HKDF, one per purpose, so
no extra secret has to be provisioned; ``SECRET_KEY_FALLBACKS`` keep older
values readable after the key rotates. Community PHI never uses this: it is
sealed under per-community keys from the key provider.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_VERSION = "v1"
_NONCE_BYTES = 12


class UnsealError(Exception):
    """A sealed value could not be opened with any configured key."""


def _derive(secret: str, purpose: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"compliance-gateway/{purpose}".encode())
    return hkdf.derive(secret.encode("utf-8"))


def _secrets() -> list[str]:
    return [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]


def seal(plaintext: str, *, purpose: str, context: str) -> str:
    """Encrypt ``plaintext`` (AES-256-GCM); ``context`` is bound as associated data."""
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(_derive(settings.SECRET_KEY, purpose)).encrypt(nonce, plaintext.encode(), context.encode())
    return f"{_VERSION}.{base64.urlsafe_b64encode(nonce + ciphertext).decode('ascii')}"


def unseal(sealed: str, *, purpose: str, context: str) -> str:
    """Decrypt a value from :func:`seal` with the current key or a fallback."""
    version, _, body = sealed.partition(".")
    if version != _VERSION:
        raise UnsealError("unknown sealed format")
    raw = base64.urlsafe_b64decode(body.encode("ascii"))
    nonce, ciphertext = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
    for secret in _secrets():
        try:
            return AESGCM(_derive(secret, purpose)).decrypt(nonce, ciphertext, context.encode()).decode()
        except InvalidTag:
            continue
    raise UnsealError("no configured key opens this value")


def keyed_hashes(value: str, *, purpose: str) -> list[str]:
    """HMAC-SHA256 of ``value`` under the current key, then each fallback (current first)."""
    return [
        hmac.new(_derive(secret, purpose), value.encode("utf-8"), hashlib.sha256).hexdigest() for secret in _secrets()
    ]
