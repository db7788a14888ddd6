"""Ed25519 signing keys for access tokens: generation, rotation and the JWKS.

Keys live in ``JWT_SIGNING_KEYS_DIR`` as ``<created-unix-seconds>-<kid>.pem``
(PKCS#8, mode 0600); the ``kid`` is the key's RFC 7638 thumbprint, checked on
load. The newest key signs. An older key keeps verifying (and stays in the
JWKS) until every token it may have signed has expired: its successor's
creation time plus the access token lifetime plus the leeway. Rotation
therefore logs nobody out, and retirement is derived from the files, not
stored anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from core.errors import ServiceUnavailable
from security.errors import IdentityErrorCode

ALGORITHM = "EdDSA"
# How long a process trusts its loaded keyring before reading the directory again.
KEYRING_RELOAD_SECONDS = 30.0
# An unknown kid triggers a reload (another process may have rotated), at most this often.
UNKNOWN_KID_RELOAD_SECONDS = 5.0


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of an Ed25519 public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


@dataclass(frozen=True)
class SigningKey:
    """One signing key pair and the second it was created."""

    kid: str
    created_at: int
    private_key: Ed25519PrivateKey

    @cached_property
    def public_key(self) -> Ed25519PublicKey:
        """The verifying half (derived once: every token verification uses it)."""
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK (RFC 8037 OKP)."""
        raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": self.kid, "use": "sig", "alg": ALGORITHM}


class Keyring:
    """The keys of one directory, oldest first."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.keys = sorted(keys, key=lambda key: (key.created_at, key.kid))

    @staticmethod
    def retention_seconds() -> int:
        """How long a superseded key keeps verifying after its successor appeared.

        A worker may sign with the old key until it reloads its keyring, so the
        reload interval is added to the token lifetime and the leeway.
        """
        return int(settings.ACCESS_TOKEN_TTL_SECONDS) + int(settings.JWT_LEEWAY_SECONDS) + int(KEYRING_RELOAD_SECONDS)

    def active(self) -> SigningKey:
        """The key that signs new tokens (the newest)."""
        if not self.keys:
            raise ServiceUnavailable("No signing key is configured.", code=IdentityErrorCode.SIGNING_KEY_UNAVAILABLE)
        return self.keys[-1]

    def verification_keys(self, now: float) -> list[SigningKey]:
        """Keys whose tokens may still be unexpired at ``now``."""
        retention = self.retention_seconds()
        successors: list[SigningKey | None] = [*self.keys[1:], None] if self.keys else []
        return [
            key
            for key, successor in zip(self.keys, successors, strict=True)
            if successor is None or successor.created_at + retention > now
        ]

    def find(self, kid: str, now: float) -> SigningKey | None:
        """The verification key with this kid, if it is still within its retention."""
        return next((key for key in self.verification_keys(now) if key.kid == kid), None)

    def jwks(self, now: float) -> dict[str, list[dict[str, str]]]:
        """The JSON Web Key Set to publish."""
        return {"keys": [key.public_jwk() for key in reversed(self.verification_keys(now))]}


class SigningKeyError(Exception):
    """A key file is unsafe or corrupt."""


def _load_key(path: Path) -> SigningKey:
    created, _, kid = path.stem.partition("-")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SigningKeyError(f"{path.name} is readable by group or others (mode {mode:o}); use 0600")
    private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path.name} is not an Ed25519 key")
    if thumbprint(private_key.public_key()) != kid or not created.isdigit():
        raise SigningKeyError(f"{path.name} does not match its key (name must be <created>-<thumbprint>.pem)")
    return SigningKey(kid=kid, created_at=int(created), private_key=private_key)


def load_keyring(directory: Path) -> Keyring:
    """Read every ``*.pem`` key of ``directory``; a missing directory is an empty keyring."""
    if not directory.is_dir():
        return Keyring([])
    return Keyring([_load_key(path) for path in sorted(directory.glob("*.pem"))])


def generate_signing_key(directory: Path, *, now: float | None = None) -> SigningKey:
    """Create a new key file (mode 0600) in ``directory``; it becomes the active key."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_key = Ed25519PrivateKey.generate()
    key = SigningKey(
        kid=thumbprint(private_key.public_key()), created_at=int(now or time.time()), private_key=private_key
    )
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = directory / f"{key.created_at}-{key.kid}.pem"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    reset_keyring_cache()
    return key


def prune_signing_keys(directory: Path, *, now: float | None = None) -> list[str]:
    """Delete key files that can no longer verify any unexpired token; return their kids."""
    moment = now or time.time()
    keyring = load_keyring(directory)
    keep = {key.kid for key in keyring.verification_keys(moment)}
    removed = []
    for path in directory.glob("*.pem"):
        if path.stem.partition("-")[2] not in keep:
            path.unlink()
            removed.append(path.stem.partition("-")[2])
    reset_keyring_cache()
    return removed


class _KeyringCache:
    """The process's keyring, reloaded periodically and when an unknown kid shows up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keyring: Keyring | None = None
        self._loaded_at = 0.0
        self._directory: Path | None = None

    def get(self, *, force_reload: bool = False) -> Keyring:
        directory = Path(settings.JWT_SIGNING_KEYS_DIR)
        with self._lock:
            age = time.monotonic() - self._loaded_at
            stale = self._keyring is None or directory != self._directory or age > KEYRING_RELOAD_SECONDS
            if stale or (force_reload and age > UNKNOWN_KID_RELOAD_SECONDS):
                self._keyring = load_keyring(directory)
                self._loaded_at = time.monotonic()
                self._directory = directory
                return self._keyring
            return self._keyring or load_keyring(directory)

    def reset(self) -> None:
        with self._lock:
            self._keyring = None


_cache = _KeyringCache()


def current_keyring(*, force_reload: bool = False) -> Keyring:
    """The keyring this process signs and verifies with."""
    return _cache.get(force_reload=force_reload)


def reset_keyring_cache() -> None:
    """Forget the loaded keyring (after this process rotated keys, and in tests)."""
    _cache.reset()


def find_verification_key(kid: Any) -> SigningKey | None:
    """The key to verify a token with ``kid``, reloading once if another process rotated."""
    if not isinstance(kid, str):
        return None
    now = time.time()
    key = current_keyring().find(kid, now)
    if key is None:
        key = current_keyring(force_reload=True).find(kid, now)
    return key
