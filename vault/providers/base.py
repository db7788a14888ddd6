"""What a key provider is: the two jobs as protocols, the values they return, and the choice of one.

:class:`KeyWrapper` holds the per-community keys that wrap data keys;
:class:`Signer` holds the Ed25519 signing keys; :class:`Archiver` holds the
key that seals audit archives. :class:`KeyProvider` is all three,
plus a readiness check, and :func:`get_provider` returns the one
``KEY_PROVIDER`` names. The key name and wrapped-key helpers here are shared
by both implementations.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from django.conf import settings

from vault.errors import KeyDestroyed, KeyServiceUnavailable

_WRAPPED_RE = re.compile(r"^(vault|local):v(\d+):")
# Lowercase letters, digits and inner hyphens, 3 to 40 characters: safe in a URL path and a JSON key.
_SIGNING_NAME_RE = re.compile(r"[a-z][a-z0-9-]{1,38}[a-z0-9]")


@dataclass(frozen=True)
class WrappedKey:
    """A data key as the provider wrapped it, and the key version that wrapped it."""

    ciphertext: str
    version: int


@dataclass(frozen=True)
class Signature:
    """A raw 64-byte Ed25519 signature and the version of the signing key that made it."""

    key_version: int
    signature: bytes


def signing_key_name(name: str) -> str:
    """``name`` if it may name a signing key, else ValueError (3 to 40 of ``a-z``, ``0-9``, inner ``-``)."""
    if not _SIGNING_NAME_RE.fullmatch(name):
        raise ValueError(f"invalid signing key name {name!r}")
    return name


def archive_key_name(name: str) -> str:
    """``name`` if it may name an archive key (the same rule as signing keys), else ValueError."""
    if not _SIGNING_NAME_RE.fullmatch(name):
        raise ValueError(f"invalid archive key name {name!r}")
    return name


def wrapped_version(ciphertext: str) -> int:
    """The key version a wrapped key names (``vault:v3:...`` is 3)."""
    match = _WRAPPED_RE.match(ciphertext)
    if match is None:
        raise KeyDestroyed("not a wrapped key of a known provider")
    return int(match.group(2))


class KeyWrapper(Protocol):
    """The per-community key encryption key, which wraps the community's data keys.

    The key never leaves the provider; the service keeps only what it wrapped.
    A retired version or a destroyed key is gone for good: what it wrapped
    raises ``KeyDestroyed``. Any other fault of the key service raises
    ``KeyServiceUnavailable`` (retryable).
    """

    def create_community_key(self, community: str) -> None:
        """Create the community's key (not exportable, no plaintext backup, deletion not allowed)."""
        ...

    def generate_wrapped_key(self, community: str) -> WrappedKey:
        """A new 256-bit data key, wrapped by the community's latest key version."""
        ...

    def unwrap(self, community: str, wrapped: str) -> bytes:
        """The plaintext of a wrapped data key (raises KeyServiceUnavailable or KeyDestroyed)."""
        ...

    def rotate(self, community: str) -> int:
        """Add a key version; return it."""
        ...

    def retire_versions_below(self, community: str, version: int) -> None:
        """Delete the versions older than ``version`` for good (what they wrapped: KeyDestroyed); safe to repeat."""
        ...

    def destroy_community_key(self, community: str) -> None:
        """Delete the community's key for good (crypto-shredding)."""
        ...


class Signer(Protocol):
    """Ed25519 signing keys, by name: the provider signs, and publishes every version's public key.

    The private key never leaves the provider, and old versions stay published
    so old signatures verify after a rotation. A name :func:`signing_key_name`
    refuses raises ``ValueError``; a key that does not exist raises
    ``KeyServiceUnavailable``, and only :meth:`ensure_signing_key` creates one.
    """

    def ensure_signing_key(self, name: str) -> None:
        """Create the Ed25519 signing key ``name`` unless it exists (not exportable, deletion not allowed)."""
        ...

    def sign(self, name: str, message: bytes) -> Signature:
        """Sign ``message`` with the latest version of ``name`` (KeyServiceUnavailable when it does not exist)."""
        ...

    def signing_public_keys(self, name: str) -> dict[int, bytes]:
        """Every version of ``name`` and its raw 32-byte Ed25519 public key, for publishing."""
        ...

    def rotate_signing_key(self, name: str) -> int:
        """Add a version to ``name`` and return it; older versions stay published."""
        ...


class Archiver(Protocol):
    """The archive key, by name: it wraps the data keys that seal audit archives, and nothing destroys it.

    An offboarded community's audit trail must outlive its own key (destroyed
    for crypto-shredding), so its archive is sealed under a provider-level key
    that no community owns. The key never leaves the provider; ``context``
    (the community) binds each wrapped key to the archive it belongs to. A
    missing archive key raises ``KeyServiceUnavailable``; only
    :meth:`ensure_archive_key` creates one.
    """

    def ensure_archive_key(self, name: str) -> None:
        """Create the archive key ``name`` unless it exists (not exportable, deletion not allowed)."""
        ...

    def generate_archive_data_key(self, name: str, context: str) -> WrappedKey:
        """A new 256-bit data key, wrapped by the latest version of the archive key ``name``."""
        ...

    def unwrap_archive_data_key(self, name: str, context: str, wrapped: str) -> bytes:
        """The plaintext of a data key the archive key wrapped under ``context``."""
        ...


class KeyProvider(KeyWrapper, Signer, Archiver, Protocol):
    """What the service needs from a key service: the three jobs, under a name, and a readiness check."""

    name: str

    def check_ready(self) -> None:
        """Raise KeyServiceUnavailable unless keys can be used."""
        ...


_provider_lock = threading.Lock()
_providers: dict[tuple[str, ...], KeyProvider] = {}


def get_provider() -> KeyProvider:
    """The provider ``KEY_PROVIDER`` names (one per configuration, per process)."""
    # Imported here, not at the top: both implementations import this module for the shared types.
    from vault.providers.local import LocalKeyProvider  # noqa: PLC0415
    from vault.providers.transit import VaultTransitProvider  # noqa: PLC0415

    key = (settings.KEY_PROVIDER, str(settings.LOCAL_KEY_FILE), settings.VAULT_ADDR)
    with _provider_lock:
        provider = _providers.get(key)
        if provider is None:
            if settings.KEY_PROVIDER == "local":
                provider = LocalKeyProvider(Path(settings.LOCAL_KEY_FILE))
            elif settings.KEY_PROVIDER == "vault":
                provider = VaultTransitProvider()
            else:
                raise KeyServiceUnavailable(f"unknown KEY_PROVIDER {settings.KEY_PROVIDER!r}")
            _providers[key] = provider
        return provider


def check_key_provider_ready() -> None:
    """Readiness check."""
    get_provider().check_ready()
