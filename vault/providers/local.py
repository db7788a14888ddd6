"""The local key provider: community and signing keys in a JSON file (mode 0600), for development and tests only.

The file holds every key version, so production settings refuse
``KEY_PROVIDER=local`` (:mod:`config.production_checks`). It keeps the same
promises as Vault Transit (:mod:`vault.providers.transit`), so the same tests
run against both.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import KeyDestroyed, KeyServiceUnavailable
from vault.providers.base import Signature, WrappedKey, archive_key_name, signing_key_name, wrapped_version


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

    @staticmethod
    def _archive_versions(store: dict[str, Any], name: str) -> dict[str, str]:
        entry = store.get("archive", {}).get(archive_key_name(name))
        if entry is None:
            raise KeyServiceUnavailable(f"no archive key {name}")
        return dict(entry["versions"])

    @staticmethod
    def _archive_aad(name: str, context: str) -> bytes:
        return f"local-archive|{name}|{context}".encode()

    def ensure_archive_key(self, name: str) -> None:
        """Create version 1 in the key file unless the key exists (``destroy_community_key`` never touches it)."""
        with self._store(write=True) as store:
            keys = store.setdefault("archive", {})
            if archive_key_name(name) not in keys:
                keys[name] = {"versions": {"1": base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}}

    def generate_archive_data_key(self, name: str, context: str) -> WrappedKey:
        """Wrap a new random data key with the archive key's latest version, bound to ``context``."""
        with self._store(write=False) as store:
            versions = self._archive_versions(store, name)
        version = max(int(number) for number in versions)
        nonce = os.urandom(12)
        body = AESGCM(base64.b64decode(versions[str(version)])).encrypt(
            nonce, AESGCM.generate_key(bit_length=256), self._archive_aad(name, context)
        )
        return WrappedKey(f"local:v{version}:" + base64.b64encode(nonce + body).decode(), version)

    def unwrap_archive_data_key(self, name: str, context: str, wrapped: str) -> bytes:
        """Unwrap with the version the wrapped key names; another context or a forged key raises KeyDestroyed."""
        version = wrapped_version(wrapped)
        with self._store(write=False) as store:
            versions = self._archive_versions(store, name)
        if str(version) not in versions:
            raise KeyDestroyed(f"archive key {name} has no version {version}")
        raw = base64.b64decode(wrapped.split(":", 2)[2])
        try:
            return AESGCM(base64.b64decode(versions[str(version)])).decrypt(
                raw[:12], raw[12:], self._archive_aad(name, context)
            )
        except InvalidTag as error:
            raise KeyDestroyed("the wrapped key does not open with the archive key here") from error


def _new_signing_key() -> str:
    return base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode()


def _signing_private_key(encoded: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(encoded))
