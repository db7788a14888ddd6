"""Key providers behind one protocol: Vault Transit (production) and a local file (development, tests).

A community has one *key encryption key* in the provider (a Transit key,
``aes256-gcm96``, derived with the community as context, never exportable).
It wraps the community's data keys; the service stores only wrapped keys and
unwraps them into process memory (see :mod:`vault.keys`).

Signing keys (Ed25519, for signed audit checkpoints) live in the same provider
under names of their own (Transit ``signing-<name>``). The private key never
leaves it; every version's public key is published so old signatures stay
verifiable after a rotation.
"""

from __future__ import annotations

import base64
import fcntl
import json
import math
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import hvac
import requests
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from hvac import exceptions as vault_errors
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from core.schema import SLUG_PATTERN
from vault.errors import KeyDestroyed, KeyServiceUnavailable

_WRAPPED_RE = re.compile(r"^(vault|local):v(\d+):")
# Vault's 400 answers that mean the key (or key version) is gone for good.
_GONE_MESSAGES = ("not found", "no existing key", "too old", "message authentication failed")
# Lowercase letters, digits and inner hyphens, 3 to 40 characters: safe in a URL path and a JSON key.
_SIGNING_NAME_RE = re.compile(r"[a-z][a-z0-9-]{1,38}[a-z0-9]")
_SIGNING_KEY_PREFIX = "signing-"
_VAULT_SIGNATURE_RE = re.compile(r"vault:v([1-9][0-9]{0,9}):([A-Za-z0-9+/=]+)")
_VERSION_RE = re.compile(r"[1-9][0-9]{0,9}")
_SIGNATURE_BYTES = 64
_PUBLIC_KEY_BYTES = 32


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


def wrapped_version(ciphertext: str) -> int:
    """The key version a wrapped key names (``vault:v3:...`` is 3)."""
    match = _WRAPPED_RE.match(ciphertext)
    if match is None:
        raise KeyDestroyed("not a wrapped key of a known provider")
    return int(match.group(2))


class KeyProvider(Protocol):
    """What the service needs from a key service."""

    name: str

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
        """Refuse to unwrap anything wrapped by an older version (``min_decryption_version``)."""
        ...

    def destroy_community_key(self, community: str) -> None:
        """Delete the community's key for good (crypto-shredding)."""
        ...

    def check_ready(self) -> None:
        """Raise KeyServiceUnavailable unless keys can be used."""
        ...

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


# --- local provider ---------------------------------------------------------------


class LocalKeyProvider:
    """Key encryption keys in a local JSON file (mode 0600). For development and tests only."""

    name = "local"

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    @contextmanager
    def _store(self, *, write: bool) -> Any:
        with self._lock:
            self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(descriptor).st_mode & 0o077:
                os.close(descriptor)
                raise KeyServiceUnavailable(f"{self._path.name} is readable by group or others; chmod 600 it")
            with os.fdopen(descriptor, "r+", encoding="utf-8") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
                text = handle.read()
                store: dict[str, Any] = json.loads(text) if text.strip() else {"communities": {}}
                yield store
                if write:
                    handle.seek(0)
                    handle.truncate()
                    handle.write(json.dumps(store))

    @staticmethod
    def _aad(community: str) -> bytes:
        return f"local-wrap|{community}".encode()

    def create_community_key(self, community: str) -> None:
        """Create version 1 (refuses to replace an existing key)."""
        with self._store(write=True) as store:
            if community in store["communities"]:
                return
            key = base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()
            store["communities"][community] = {"versions": {"1": key}, "min_decryption_version": 1}

    def _entry(self, store: dict[str, Any], community: str) -> dict[str, Any]:
        entry = store["communities"].get(community)
        if entry is None:
            raise KeyDestroyed(f"no key for community {community}")
        return dict(entry)

    def generate_wrapped_key(self, community: str) -> WrappedKey:
        """Wrap a new random data key with the latest version."""
        with self._store(write=False) as store:
            entry = self._entry(store, community)
        version = max(int(number) for number in entry["versions"])
        kek = AESGCM(base64.b64decode(entry["versions"][str(version)]))
        nonce = os.urandom(12)
        body = kek.encrypt(nonce, AESGCM.generate_key(bit_length=256), self._aad(community))
        return WrappedKey(f"local:v{version}:" + base64.b64encode(nonce + body).decode(), version)

    def unwrap(self, community: str, wrapped: str) -> bytes:
        """Unwrap with the version the wrapped key names."""
        version = wrapped_version(wrapped)
        with self._store(write=False) as store:
            entry = self._entry(store, community)
        if version < entry["min_decryption_version"] or str(version) not in entry["versions"]:
            raise KeyDestroyed(f"key version {version} of {community} is retired")
        raw = base64.b64decode(wrapped.split(":", 2)[2])
        try:
            return AESGCM(base64.b64decode(entry["versions"][str(version)])).decrypt(
                raw[:12], raw[12:], self._aad(community)
            )
        except InvalidTag as error:
            raise KeyDestroyed("the wrapped key does not open with this community's key") from error

    def rotate(self, community: str) -> int:
        """Add a version."""
        with self._store(write=True) as store:
            entry = self._entry(store, community)
            version = max(int(number) for number in entry["versions"]) + 1
            entry["versions"][str(version)] = base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()
            store["communities"][community] = entry
        return version

    def retire_versions_below(self, community: str, version: int) -> None:
        """Raise the minimum version and forget older ones (as Vault's trim would)."""
        with self._store(write=True) as store:
            entry = self._entry(store, community)
            entry["min_decryption_version"] = version
            entry["versions"] = {number: key for number, key in entry["versions"].items() if int(number) >= version}
            store["communities"][community] = entry

    def destroy_community_key(self, community: str) -> None:
        """Forget every version."""
        with self._store(write=True) as store:
            store["communities"].pop(community, None)

    def check_ready(self) -> None:
        """The key file can be read."""
        try:
            with self._store(write=False):
                pass
        except (OSError, ValueError) as error:
            raise KeyServiceUnavailable(f"local key file unreadable: {type(error).__name__}") from error

    @staticmethod
    def _signing_versions(store: dict[str, Any], name: str) -> dict[str, str]:
        entry = store.get("signing", {}).get(signing_key_name(name))
        if entry is None:
            raise KeyServiceUnavailable(f"no signing key {name}")
        return dict(entry["versions"])

    def ensure_signing_key(self, name: str) -> None:
        """Create version 1 in the key file unless the key exists."""
        with self._store(write=True) as store:
            keys = store.setdefault("signing", {})
            if signing_key_name(name) not in keys:
                keys[name] = {"versions": {"1": _new_signing_key()}}

    def sign(self, name: str, message: bytes) -> Signature:
        """Sign with the latest version."""
        with self._store(write=False) as store:
            versions = self._signing_versions(store, name)
        version = max(int(number) for number in versions)
        return Signature(version, _signing_private_key(versions[str(version)]).sign(message))

    def signing_public_keys(self, name: str) -> dict[int, bytes]:
        """The public half of every version."""
        with self._store(write=False) as store:
            versions = self._signing_versions(store, name)
        return {
            int(number): _signing_private_key(private).public_key().public_bytes_raw()
            for number, private in versions.items()
        }

    def rotate_signing_key(self, name: str) -> int:
        """Add a version."""
        with self._store(write=True) as store:
            versions = self._signing_versions(store, name)
            version = max(int(number) for number in versions) + 1
            versions[str(version)] = _new_signing_key()
            store["signing"][name] = {"versions": versions}
        return version


def _new_signing_key() -> str:
    return base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode()


def _signing_private_key(encoded: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(encoded))


# --- Vault Transit ----------------------------------------------------------------------


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
        transit, name = self._client.secrets.transit, self._key(community)
        self._call(
            "create key",
            lambda: transit.create_key(
                name,
                key_type="aes256-gcm96",
                derived=True,
                exportable=False,
                allow_plaintext_backup=False,
                mount_point=self._mount,
            ),
        )
        self._call(
            "configure key",
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

    def _read_signing_key(self, key: str) -> Any:
        """``GET transit/keys/:name``; None when Vault answers 404 (no such key)."""

        def read() -> Any:
            try:
                return self._client.secrets.transit.read_key(key, mount_point=self._mount)
            except vault_errors.InvalidPath:
                return None

        return self._call("read signing key", read)

    def ensure_signing_key(self, name: str) -> None:
        """ed25519, not exportable, no plaintext backup, deletion not allowed; created only when the read finds none."""
        transit, key = self._client.secrets.transit, self._signing_key(name)
        existing = self._read_signing_key(key)
        if existing is not None:
            _vault_public_keys(existing)  # a key of another type under this name is refused, not used
            return
        with _signing_key_must_exist("create signing key"):
            self._call(
                "create signing key",
                lambda: transit.create_key(
                    key, key_type="ed25519", exportable=False, allow_plaintext_backup=False, mount_point=self._mount
                ),
            )
            self._call(
                "configure signing key",
                lambda: transit.update_key_configuration(key, deletion_allowed=False, mount_point=self._mount),
            )

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
        existing = self._read_signing_key(self._signing_key(name))
        if existing is None:
            raise KeyServiceUnavailable(f"no signing key {name}")
        return _vault_public_keys(existing)

    def rotate_signing_key(self, name: str) -> int:
        """``POST transit/keys/:name/rotate``."""
        key = self._signing_key(name)
        with _signing_key_must_exist("rotate signing key"):
            return self._rotate(key)


_provider_lock = threading.Lock()
_providers: dict[tuple[str, ...], KeyProvider] = {}


def get_provider() -> KeyProvider:
    """The provider ``KEY_PROVIDER`` names (one per configuration, per process)."""
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
