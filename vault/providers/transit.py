"""The production key provider: HashiCorp Vault's Transit engine, through hvac.

A community's key is the Transit key ``<VAULT_KEY_PREFIX><community>``
(``aes256-gcm96``, derived with the community as context); a signing key is
``signing-<name>`` (``ed25519``); the archive key is ``archive-<name>``
(``aes256-gcm96``, derived with the community as context). All are created not exportable, with no
plaintext backup and deletion not allowed; only crypto-shredding allows, then
deletes, a community's key, and nothing deletes the archive key. Vault's faults fail closed: a community key (or
version) that is gone raises ``KeyDestroyed``; anything else, a missing
signing key included, raises ``KeyServiceUnavailable``.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import hvac
import requests
from django.conf import settings
from hvac import exceptions as vault_errors
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from core.schema import SLUG_PATTERN
from vault.errors import KeyDestroyed, KeyServiceUnavailable
from vault.providers.base import Signature, WrappedKey, archive_key_name, signing_key_name, wrapped_version

# Vault's 400 answers that mean the key (or key version) is gone for good.
_GONE_MESSAGES = ("not found", "no existing key", "too old", "message authentication failed")
_SIGNING_KEY_PREFIX = "signing-"
_ARCHIVE_KEY_PREFIX = "archive-"
_VAULT_SIGNATURE_RE = re.compile(r"vault:v([1-9][0-9]{0,9}):([A-Za-z0-9+/=]+)")
_VERSION_RE = re.compile(r"[1-9][0-9]{0,9}")
_SIGNATURE_BYTES = 64
_PUBLIC_KEY_BYTES = 32


def _context(community: str) -> str:
    return base64.b64encode(community.encode()).decode()


@contextmanager
def _signing_key_must_exist(what: str) -> Iterator[None]:
    """Vault's "not found" means KeyDestroyed to ``_call``; a missing signing key is a fault to fix, not a shred."""
    try:
        yield
    except KeyDestroyed as error:
        raise KeyServiceUnavailable(f"{what}: no such signing key") from error


def _strict_base64(text: str, length: int, what: str) -> bytes:
    """Canonical standard base64 of exactly ``length`` bytes, else KeyServiceUnavailable."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != length or base64.b64encode(raw).decode() != text:
        raise KeyServiceUnavailable(f"vault answered a malformed {what}")
    return raw


def _data(response: Any) -> dict[str, Any]:
    data = response.get("data") if isinstance(response, dict) else None
    if not isinstance(data, dict):
        raise KeyServiceUnavailable("vault answered without data")
    return data


def _vault_signature(response: Any) -> Signature:
    """``data.signature`` = ``vault:v<N>:<base64 of the raw 64-byte signature>``, nothing else."""
    text = _data(response).get("signature")
    match = _VAULT_SIGNATURE_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise KeyServiceUnavailable("vault answered a malformed signature")
    return Signature(int(match.group(1)), _strict_base64(match.group(2), _SIGNATURE_BYTES, "signature"))


def _vault_public_keys(response: Any) -> dict[int, bytes]:
    """``data.keys`` of an ed25519 key: ``{"1": {"public_key": <base64 of 32 bytes>, ...}, ...}``."""
    data = _data(response)
    versions = data.get("keys")
    if data.get("type") != "ed25519" or not isinstance(versions, dict) or not versions:
        raise KeyServiceUnavailable("the signing key in vault is not an ed25519 key")
    published: dict[int, bytes] = {}
    for number, entry in versions.items():
        public_key = entry.get("public_key") if isinstance(entry, dict) else None
        if not isinstance(number, str) or not _VERSION_RE.fullmatch(number) or not isinstance(public_key, str):
            raise KeyServiceUnavailable("vault answered a malformed key version")
        published[int(number)] = _strict_base64(public_key, _PUBLIC_KEY_BYTES, "public key")
    return published


class VaultTransitProvider:
    """HashiCorp Vault's Transit engine through hvac: token or AppRole auth, TLS verified, bounded retries."""

    name = "vault"

    def __init__(self) -> None:
        self._mount = settings.VAULT_TRANSIT_MOUNT
        self._prefix = settings.VAULT_KEY_PREFIX
        self._client = hvac.Client(
            url=settings.VAULT_ADDR,
            token=settings.VAULT_TOKEN or None,
            verify=settings.VAULT_CACERT or True,
            timeout=math.ceil(settings.VAULT_TIMEOUT_SECONDS),
        )
        # Retries only when the connection could not be made: no request reached Vault, so even a
        # rotate (not idempotent) is safe to send again.
        retry = Retry(total=2, connect=2, read=0, status=0, other=0, backoff_factor=0.1, allowed_methods=None)
        self._client.adapter.session.mount("https://", HTTPAdapter(max_retries=retry))
        self._client.adapter.session.mount("http://", HTTPAdapter(max_retries=retry))
        self._logged_in = bool(settings.VAULT_TOKEN)

    def _key(self, community: str) -> str:
        return f"{self._prefix}{community}"

    def _signing_key(self, name: str) -> str:
        """``signing-<name>``; refused when ``VAULT_KEY_PREFIX`` would let a community key carry that name."""
        key = f"{_SIGNING_KEY_PREFIX}{signing_key_name(name)}"
        if key.startswith(self._prefix) and re.fullmatch(SLUG_PATTERN, key.removeprefix(self._prefix)):
            raise ValueError(f"signing key {key!r} could be the key of a community under prefix {self._prefix!r}")
        return key

    def _archive_key(self, name: str) -> str:
        """``archive-<name>``; refused, as for signing keys, when it could be the key of a community."""
        key = f"{_ARCHIVE_KEY_PREFIX}{archive_key_name(name)}"
        if key.startswith(self._prefix) and re.fullmatch(SLUG_PATTERN, key.removeprefix(self._prefix)):
            raise ValueError(f"archive key {key!r} could be the key of a community under prefix {self._prefix!r}")
        return key

    def _call(self, what: str, operation: Callable[[], Any]) -> Any:
        """Run one Vault call; with AppRole, a refused (expired) token logs in again once."""
        try:
            self._login()
            try:
                return operation()
            except vault_errors.Forbidden:
                if settings.VAULT_TOKEN:
                    raise
                self._logged_in = False
                self._login()
                return operation()
        except vault_errors.InvalidRequest as error:
            message = str(error).lower()
            if any(sign in message for sign in _GONE_MESSAGES):
                raise KeyDestroyed(f"{what}: {type(error).__name__}") from error
            raise KeyServiceUnavailable(f"{what}: refused ({type(error).__name__})") from error
        except (vault_errors.VaultError, requests.RequestException) as error:
            # Sealed (503), refused (403), a wrong mount (404/405), unreachable: fail closed, retryable.
            raise KeyServiceUnavailable(f"{what}: {type(error).__name__}") from error

    def _login(self) -> None:
        if self._logged_in:
            return
        response = self._client.auth.approle.login(role_id=settings.VAULT_ROLE_ID, secret_id=settings.VAULT_SECRET_ID)
        self._client.token = response["auth"]["client_token"]
        self._logged_in = True

    def configure_mount(self) -> None:
        """``disable_upsert``: an encrypt call must never create a key."""
        self._call(
            "configure transit",
            lambda: self._client.adapter.post(f"/v1/{self._mount}/config/keys", json={"disable_upsert": True}),
        )

    def create_community_key(self, community: str) -> None:
        """aes256-gcm96, derived, not exportable, no plaintext backup, deletion not allowed."""
        self._create_locked_key(self._key(community), "key", key_type="aes256-gcm96", derived=True)

    def _create_locked_key(self, name: str, what: str, **kind: Any) -> None:
        """Create a key that never leaves Vault (not exportable, no plaintext backup), then forbid its deletion."""
        transit = self._client.secrets.transit
        self._call(
            f"create {what}",
            lambda: transit.create_key(
                name, exportable=False, allow_plaintext_backup=False, mount_point=self._mount, **kind
            ),
        )
        self._call(
            f"configure {what}",
            lambda: transit.update_key_configuration(name, deletion_allowed=False, mount_point=self._mount),
        )

    def generate_wrapped_key(self, community: str) -> WrappedKey:
        """``POST transit/datakey/wrapped/:name`` (the plaintext never travels here)."""
        response = self._call(
            "generate data key",
            lambda: self._client.secrets.transit.generate_data_key(
                self._key(community),
                key_type="wrapped",
                context=_context(community),
                bits=256,
                mount_point=self._mount,
            ),
        )
        ciphertext = str(response["data"]["ciphertext"])
        return WrappedKey(ciphertext, wrapped_version(ciphertext))

    def unwrap(self, community: str, wrapped: str) -> bytes:
        """``POST transit/decrypt/:name`` with the community as derivation context."""
        response = self._call(
            "unwrap data key",
            lambda: self._client.secrets.transit.decrypt_data(
                self._key(community), ciphertext=wrapped, context=_context(community), mount_point=self._mount
            ),
        )
        return base64.b64decode(response["data"]["plaintext"])

    def rotate(self, community: str) -> int:
        """``POST transit/keys/:name/rotate``; the latest version from its answer (or a read, on older Vaults)."""
        return self._rotate(self._key(community))

    def _rotate(self, name: str) -> int:
        transit = self._client.secrets.transit
        response = self._call("rotate key", lambda: transit.rotate_key(name, mount_point=self._mount))
        data = response.get("data") if isinstance(response, dict) else None
        if not isinstance(data, dict) or "latest_version" not in data:
            data = self._call("read key", lambda: transit.read_key(name, mount_point=self._mount))["data"]
        return int(data["latest_version"])

    def retire_versions_below(self, community: str, version: int) -> None:
        """``min_decryption_version`` = version."""
        self._call(
            "retire key versions",
            lambda: self._client.secrets.transit.update_key_configuration(
                self._key(community), min_decryption_version=version, mount_point=self._mount
            ),
        )

    def destroy_community_key(self, community: str) -> None:
        """Allow deletion, then delete: every version goes. A key already gone is done."""
        transit, name = self._client.secrets.transit, self._key(community)
        try:
            self._call(
                "allow deletion",
                lambda: transit.update_key_configuration(name, deletion_allowed=True, mount_point=self._mount),
            )
            self._call("destroy key", lambda: transit.delete_key(name, mount_point=self._mount))
        except KeyDestroyed:
            return

    def check_ready(self) -> None:
        """Vault unsealed and answering (``/sys/health`` is 200 only when active and unsealed)."""
        try:
            response = requests.get(
                f"{settings.VAULT_ADDR}/v1/sys/health",
                timeout=settings.VAULT_TIMEOUT_SECONDS,
                verify=settings.VAULT_CACERT or True,
            )
        except requests.RequestException as error:
            raise KeyServiceUnavailable("vault unreachable") from error
        if response.status_code != 200:  # noqa: PLR2004 - HTTP status
            raise KeyServiceUnavailable(f"vault not ready ({response.status_code})")

    def _read_key(self, key: str) -> Any:
        """``GET transit/keys/:name`` (a signing or the archive key); None when Vault answers 404 (no such key)."""

        def read() -> Any:
            try:
                return self._client.secrets.transit.read_key(key, mount_point=self._mount)
            except vault_errors.InvalidPath:
                return None

        return self._call("read signing key", read)

    def ensure_signing_key(self, name: str) -> None:
        """ed25519, not exportable, no plaintext backup, deletion not allowed; created only when the read finds none."""
        key = self._signing_key(name)
        existing = self._read_key(key)
        if existing is not None:
            _vault_public_keys(existing)  # a key of another type under this name is refused, not used
            return
        with _signing_key_must_exist("create signing key"):
            self._create_locked_key(key, "signing key", key_type="ed25519")

    def sign(self, name: str, message: bytes) -> Signature:
        """``POST transit/sign/:name`` (pure Ed25519 over the message; the latest version signs)."""
        key = self._signing_key(name)
        with _signing_key_must_exist("sign"):
            response = self._call(
                "sign",
                lambda: self._client.secrets.transit.sign_data(
                    key, hash_input=base64.b64encode(message).decode(), mount_point=self._mount
                ),
            )
        return _vault_signature(response)

    def signing_public_keys(self, name: str) -> dict[int, bytes]:
        """``GET transit/keys/:name``: ``keys.<version>.public_key``."""
        existing = self._read_key(self._signing_key(name))
        if existing is None:
            raise KeyServiceUnavailable(f"no signing key {name}")
        return _vault_public_keys(existing)

    def rotate_signing_key(self, name: str) -> int:
        """``POST transit/keys/:name/rotate``."""
        key = self._signing_key(name)
        with _signing_key_must_exist("rotate signing key"):
            return self._rotate(key)

    def ensure_archive_key(self, name: str) -> None:
        """aes256-gcm96, derived, not exportable, no plaintext backup, deletion not allowed; created unless found."""
        key = self._archive_key(name)
        if self._read_key(key) is not None:
            return
        with _signing_key_must_exist("create archive key"):
            self._create_locked_key(key, "archive key", key_type="aes256-gcm96", derived=True)

    def generate_archive_data_key(self, name: str, context: str) -> WrappedKey:
        """``POST transit/datakey/wrapped/archive-<name>`` with ``context`` as derivation context."""
        key = self._archive_key(name)
        with _signing_key_must_exist("generate archive data key"):
            response = self._call(
                "generate archive data key",
                lambda: self._client.secrets.transit.generate_data_key(
                    key, key_type="wrapped", context=_context(context), bits=256, mount_point=self._mount
                ),
            )
        ciphertext = str(response["data"]["ciphertext"])
        return WrappedKey(ciphertext, wrapped_version(ciphertext))

    def unwrap_archive_data_key(self, name: str, context: str, wrapped: str) -> bytes:
        """``POST transit/decrypt/archive-<name>`` with ``context`` (a wrong context or forged key: KeyDestroyed)."""
        key = self._archive_key(name)
        response = self._call(
            "unwrap archive data key",
            lambda: self._client.secrets.transit.decrypt_data(
                key, ciphertext=wrapped, context=_context(context), mount_point=self._mount
            ),
        )
        return base64.b64decode(response["data"]["plaintext"])
