"""Key providers: where the community keys and the signing keys live, chosen by ``KEY_PROVIDER``.

A community has one *key encryption key* in the provider (a Transit key,
``aes256-gcm96``, derived with the community as context, never exportable).
It wraps the community's data keys; the service stores only wrapped keys and
unwraps them into process memory (see :mod:`vault.keys`).

Signing keys (Ed25519, for signed audit checkpoints) live in the same provider
under names of their own (Transit ``signing-<name>``). The private key never
leaves it; every version's public key is published so old signatures stay
verifiable after a rotation.

The archive key (``aes256-gcm96``, derived, Transit ``archive-<name>``) wraps
the data keys that seal offboarded communities' audit archives. It belongs to
no community, so crypto-shredding a community never destroys it.

- :mod:`vault.providers.base`: the contracts (:class:`KeyWrapper`, :class:`Signer`
  and their union :class:`KeyProvider`), the values they return, and
  :func:`get_provider`.
- :mod:`vault.providers.local`: a local key file (development, tests).
- :mod:`vault.providers.transit`: Vault Transit through hvac (production).

This package is the public face: import from ``vault.providers``.
"""

from vault.providers.base import (
    Archiver,
    KeyProvider,
    KeyWrapper,
    Signature,
    Signer,
    WrappedKey,
    archive_key_name,
    check_key_provider_ready,
    get_provider,
    signing_key_name,
    wrapped_version,
)
from vault.providers.local import LocalKeyProvider
from vault.providers.transit import VaultTransitProvider

__all__ = [
    "Archiver",
    "KeyProvider",
    "KeyWrapper",
    "LocalKeyProvider",
    "Signature",
    "Signer",
    "VaultTransitProvider",
    "WrappedKey",
    "archive_key_name",
    "check_key_provider_ready",
    "get_provider",
    "signing_key_name",
    "wrapped_version",
]
