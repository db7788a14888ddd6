"""The community's data keys: provisioning, rotation, destruction, and the in-memory cache.

Unwrapped keys live only in this process's memory, in a cache bounded by age,
by number of uses and by number of entries (the AWS Encryption SDK's caching
thresholds are the model): any bound exceeded evicts the key, and the next
use unwraps it again. A warm cache makes no provider call, so a sealed or
unreachable Vault is felt only once a bound expires: then 503, never a
plaintext write and never a silent null.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from core.metrics import key_call, record_data_key_lookup
from core.schema import tenant_connection
from vault.errors import KeyDestroyed, KeyServiceUnavailable
from vault.models import DataKey, KeyKind
from vault.providers import KeyWrapper, get_provider


class SecretBytes(bytes):
    """Key material: never shown by ``repr`` (tracebacks with locals), never pickled."""

    def __repr__(self) -> str:
        return "<secret>"

    def __reduce__(self) -> Any:
        raise TypeError("key material cannot be pickled")


@dataclass
class _Entry:
    key: SecretBytes = field(repr=False)
    cipher: AESGCM = field(repr=False)
    loaded_at: float
    uses: int = 0

    def __reduce__(self) -> Any:
        raise TypeError("key material cannot be pickled")


class DataKeyCache:
    """Unwrapped keys by (community, kind, version), bounded by age, uses and size."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str, int], _Entry] = OrderedDict()
        self.provider_calls = 0

    def peek(self, key: tuple[str, str, int]) -> _Entry | None:
        """The entry for ``key`` if within its bounds (counted as a use); expired entries are evicted."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self._fresh(entry, now):
                entry.uses += 1
                self._entries.move_to_end(key)
                return entry
            self._entries.pop(key, None)
        return None

    def get(self, key: tuple[str, str, int], unwrap: Callable[[], bytes]) -> _Entry:
        """The live entry for ``key``, unwrapping (one provider call) when absent or expired."""
        entry = self.peek(key)
        record_data_key_lookup(hit=entry is not None)
        if entry is not None:
            return entry
        with key_call("unwrap"):
            plaintext = unwrap()
        self.provider_calls += 1
        entry = _Entry(key=SecretBytes(plaintext), cipher=AESGCM(plaintext), loaded_at=time.monotonic(), uses=1)
        with self._lock:
            self._entries[key] = entry
            while len(self._entries) > settings.DATA_KEY_CACHE_MAX_ENTRIES:
                self._entries.popitem(last=False)
        return entry

    @staticmethod
    def _fresh(entry: _Entry, now: float) -> bool:
        return (
            now - entry.loaded_at < settings.DATA_KEY_CACHE_MAX_AGE_SECONDS
            and entry.uses < settings.DATA_KEY_CACHE_MAX_USES
        )

    def purge(self, community: str | None = None) -> None:
        """Forget the keys of one community (or all)."""
        with self._lock:
            for key in [key for key in self._entries if community is None or key[0] == community]:
                del self._entries[key]


cache = DataKeyCache()


def current_community() -> str:
    """The community whose schema the connection uses; PHI never lives in the public schema."""
    schema = tenant_connection().schema_name
    if not schema or schema == "public":
        raise KeyServiceUnavailable("protected data outside a community schema")
    return schema


def _entry(community: str, row: DataKey) -> _Entry:
    return cache.get((community, row.kind, row.version), lambda: get_provider().unwrap(community, row.wrapped))


def write_key(community: str) -> tuple[int, AESGCM]:
    """The newest data key (version, cipher): new values are always sealed with it."""
    row = DataKey.objects.filter(kind=KeyKind.DATA).order_by("-version").first()
    if row is None:
        raise KeyServiceUnavailable(f"community {community} has no data key")
    return row.version, _entry(community, row).cipher


def read_key(community: str, version: int) -> AESGCM:
    """The data key a ciphertext names; from the cache when warm."""
    cached = cache.peek((community, str(KeyKind.DATA), version))
    if cached is not None:
        record_data_key_lookup(hit=True)
        return cached.cipher
    row = DataKey.objects.filter(kind=KeyKind.DATA, version=version).first()
    if row is None:
        raise KeyDestroyed(f"data key v{version} of {community} is gone")
    return _entry(community, row).cipher


def index_keys(community: str) -> list[tuple[int, SecretBytes]]:
    """Blind index keys (version, key), newest first: searches try each live version."""
    rows = list(DataKey.objects.filter(kind=KeyKind.INDEX).order_by("-version"))
    if not rows:
        raise KeyServiceUnavailable(f"community {community} has no index key")
    return [(row.version, _entry(community, row).key) for row in rows]


def _store_new_keys(community: str) -> int:
    """A data key and an index key wrapped by the latest provider version; returns that version."""
    provider: KeyWrapper = get_provider()
    versions = set()
    for kind in (KeyKind.DATA, KeyKind.INDEX):
        with key_call("generate_wrapped_key"):
            wrapped = provider.generate_wrapped_key(community)
        DataKey.objects.create(kind=kind, version=wrapped.version, wrapped=wrapped.ciphertext)
        versions.add(wrapped.version)
    return max(versions)


def community_keys_create(community: str) -> None:
    """Create the community's key in the provider and its first data and index keys (in its schema)."""
    with key_call("create_community_key"):
        get_provider().create_community_key(community)
    _store_new_keys(community)


def community_keys_ensure(community: str) -> bool:
    """Give a community created before key management its keys; True when something was created."""
    if DataKey.objects.exists():
        return False
    community_keys_create(community)
    return True


def community_keys_rotate(community: str) -> int:
    """A new provider key version and new data and index keys wrapped by it; returns the version."""
    with key_call("rotate"):
        get_provider().rotate(community)
    return _store_new_keys(community)


def community_keys_forget_below(community: str, version: int) -> None:
    """After re-encryption: the wrapped keys of older versions go (no row uses them any more)."""
    DataKey.objects.filter(version__lt=version).delete()
    cache.purge(community)


def community_keys_retire_below(community: str, version: int) -> None:
    """Once :func:`community_keys_forget_below` is committed: the provider deletes the older versions.

    Never before: a provider that fails half way (Vault refusing the old
    versions, its trim not done) would leave wrapped keys that every search
    and write still unwraps. Safe to repeat.
    """
    with key_call("retire_versions_below"):
        get_provider().retire_versions_below(community, version)


def community_keys_destroy(community: str) -> None:
    """Crypto-shredding: the provider forgets the key; the wrapped keys and this process's cache go too.

    Other processes may hold an unwrapped key until its cache bounds expire; no
    request reaches them (an offboarded community is not served) and tasks
    check the community's status before they run.
    """
    with key_call("destroy_community_key"):
        get_provider().destroy_community_key(community)
    DataKey.objects.all().delete()
    cache.purge(community)
