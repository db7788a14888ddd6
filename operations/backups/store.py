"""Where backups are kept, sealed: a directory (``BACKUP_DIR``), one sealed file and one record per object.

An object is a base backup's tar, a WAL segment or a part of a community's
logical backup. Each is compressed (zlib: a switched WAL segment is mostly
zeros) and sealed on its way in (:mod:`vault.sealing`, 64 KiB AES-256-GCM
chunks bound to the object's name) under a data key of its own, which the key provider's backup key wraps
(an archive key: no community owns it and nothing destroys it, so a backup
outlives key rotation; the community keys inside the database still decide
whether its PHI opens). The record beside it keeps the wrapped key and the
SHA-256 of the sealed and of the plain bytes; reading checks both.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from operations.backups.errors import BackupError
from vault.errors import CiphertextIntegrityError
from vault.providers import get_provider
from vault.sealing import SealedWriter, open_chunks, read_key_version

READ_BYTES = 1024 * 1024


def chunks_of(source: IO[bytes]) -> Iterator[bytes]:
    """``source`` read to its end, a block at a time."""
    while block := source.read(READ_BYTES):
        yield block


_NAME = re.compile(
    r"base/[0-9]{8}T[0-9]{6}Z/[a-z_]+\.tar|wal/[0-9A-F]{24}|wal/[0-9A-F]{8}\.history"
    r"|community/[a-z][a-z0-9_]{2,39}/[0-9]{8}T[0-9]{6}Z/(schema\.dump|public\.[a-z_]{1,60}\.csv)"
)
COMPRESSION_LEVEL = 3  # zlib: most of the size for little of the time


@dataclass(frozen=True)
class Record:
    """What is known of a stored object without opening it."""

    name: str
    wrapped_key: str
    key_version: int
    plain_bytes: int
    plain_sha256: str
    sealed_sha256: str
    compression: str = ""  # "zlib"; a record written before objects were compressed names none


def _checked(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a backup object name: {name!r}")
    return name


def _aad(name: str) -> bytes:
    return f"backup|{name}".encode()


class _HashingSink:
    """Writes to a file and hashes what it writes."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.digest = handle, hashlib.sha256()

    def write(self, data: bytes, /) -> int:
        self.digest.update(data)
        return self.handle.write(data)


class BackupStore:
    """Sealed objects under a root directory (0700), each written atomically and made read-only."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or settings.BACKUP_DIR)

    def _path(self, name: str) -> Path:
        return self.root / (_checked(name) + ".sealed")

    def has(self, name: str) -> bool:
        """Whether the object is stored (its record is written last)."""
        return self._path(name).with_suffix(".json").is_file()

    def put(self, name: str, chunks: Iterable[bytes]) -> Record:
        """Seal ``chunks`` into the store as ``name``; returns its record."""
        provider, key_name = get_provider(), str(settings.BACKUP_KEY_NAME)
        provider.ensure_archive_key(key_name)
        wrapped = provider.generate_archive_data_key(key_name, name)
        cipher = AESGCM(provider.unwrap_archive_data_key(key_name, name, wrapped.ciphertext))
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_name(f".partial-{path.name}")
        plain, size = hashlib.sha256(), 0
        try:
            with partial.open("wb") as handle:
                sink = _HashingSink(handle)
                writer = SealedWriter(sink, cipher=cipher, key_version=wrapped.version, aad=_aad(name))
                squeeze = zlib.compressobj(COMPRESSION_LEVEL)
                for chunk in chunks:
                    plain.update(chunk)
                    size += len(chunk)
                    writer.write(squeeze.compress(chunk))
                writer.write(squeeze.flush())
                writer.close()
                handle.flush()
                os.fsync(handle.fileno())
            partial.chmod(0o400)
            partial.replace(path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        record = Record(
            name, wrapped.ciphertext, wrapped.version, size, plain.hexdigest(), sink.digest.hexdigest(), "zlib"
        )
        _write_json(path.with_suffix(".json"), asdict(record))
        return record

    def record(self, name: str) -> Record:
        """The record of a stored object."""
        try:
            return Record(**json.loads(self._path(name).with_suffix(".json").read_text()))
        except (OSError, ValueError, TypeError) as error:
            raise BackupError(f"no readable record of {name}") from error

    def read(self, name: str) -> Iterator[bytes]:
        """The object's plain bytes, chunk by chunk; both checksums are checked (the plain one at the end).

        Raises:
            BackupError: the object is missing, altered or cut short.
        """
        record = self.record(name)
        path = self._path(name)
        if _sha256_of(path) != record.sealed_sha256:
            raise BackupError(f"{name}: the sealed file does not match its checksum")
        key_name = str(settings.BACKUP_KEY_NAME)
        cipher = AESGCM(get_provider().unwrap_archive_data_key(key_name, name, record.wrapped_key))
        plain = hashlib.sha256()
        with path.open("rb") as source:
            try:
                if read_key_version(source) != record.key_version:
                    raise BackupError(f"{name}: sealed under another key version than its record says")
                unsqueeze = _Unsqueeze(record.compression)
                for sealed_chunk in open_chunks(source, cipher=cipher, aad=_aad(name)):
                    chunk = unsqueeze.decompress(sealed_chunk)
                    plain.update(chunk)
                    yield chunk
                tail = unsqueeze.flush()
                plain.update(tail)
                yield tail
            except (CiphertextIntegrityError, zlib.error) as error:
                raise BackupError(f"{name}: {error}") from error
        if plain.hexdigest() != record.plain_sha256:
            raise BackupError(f"{name}: the opened bytes do not match their checksum")

    def names(self, folder: str) -> list[str]:
        """The stored objects under ``folder`` (``wal`` or ``base/<id>``), sorted."""
        base = self.root / folder
        if not base.is_dir():
            return []
        found = (f"{folder}/{path.name.removesuffix('.json')}" for path in base.glob("*.json"))
        return sorted(name for name in found if _NAME.fullmatch(name))

    def backups(self) -> list[str]:
        """The ids of the complete base backups (their manifest written), oldest first."""
        base = self.root / "base"
        return sorted(path.parent.name for path in base.glob("*/manifest.json")) if base.is_dir() else []

    def write_manifest(self, backup_id: str, manifest: dict[str, object]) -> None:
        """The base backup's manifest, written last: a backup without one is incomplete."""
        self.write_manifest_at(f"base/{backup_id}", manifest)

    def manifest(self, backup_id: str) -> dict[str, object]:
        """A base backup's manifest."""
        return self.manifest_at(f"base/{backup_id}")

    def write_manifest_at(self, folder: str, manifest: dict[str, object]) -> None:
        """The manifest of the backup in ``folder``, written last."""
        _write_json(self.root / folder / "manifest.json", manifest)

    def manifest_at(self, folder: str) -> dict[str, object]:
        """The manifest of the backup in ``folder``."""
        try:
            loaded: dict[str, object] = json.loads((self.root / folder / "manifest.json").read_text())
        except (OSError, ValueError) as error:
            raise BackupError(f"{folder} has no readable manifest") from error
        return loaded

    def community_backups(self) -> dict[str, list[str]]:
        """Each community's complete logical backups (their folders), oldest first."""
        found: dict[str, list[str]] = {}
        for path in sorted(self.root.glob("community/*/*/manifest.json")):
            found.setdefault(path.parent.parent.name, []).append(
                f"community/{path.parent.parent.name}/{path.parent.name}"
            )
        return found

    def copy_to(self, other: BackupStore, name: str) -> None:
        """Copy a stored object (sealed file and record) into ``other`` under the same name, checked on the way.

        The name stays: the chunks are bound to it. The copy is checked against
        the record's sealed checksum before its record is written.
        """
        record = self.record(name)
        target = other._path(name)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = target.with_name(f".partial-{target.name}")
        with self._path(name).open("rb") as source, partial.open("wb") as handle:
            for block in chunks_of(source):
                handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())
        if _sha256_of(partial) != record.sealed_sha256:
            partial.unlink()
            raise BackupError(f"{name}: the copy does not match its checksum")
        partial.chmod(0o400)
        partial.replace(target)
        _write_json(target.with_suffix(".json"), asdict(record))

    def delete(self, name: str) -> None:
        """Remove a stored object (its record first: a half-removed object reads as absent)."""
        path = self._path(name)
        path.with_suffix(".json").unlink(missing_ok=True)
        path.unlink(missing_ok=True)

    def delete_backup(self, backup_id: str) -> None:
        """Remove a base backup: its manifest first, then its objects and folder."""
        self.delete_folder(f"base/{backup_id}")

    def delete_folder(self, folder: str) -> None:
        """Remove a backup's folder (base or logical): its manifest first, then its objects."""
        path = self.root / folder
        (path / "manifest.json").unlink(missing_ok=True)
        for name in self.names(folder):
            self.delete(name)
        for leftover in path.glob("*"):
            leftover.unlink()
        path.rmdir()

    def sealed_size(self, name: str) -> int:
        """Bytes of one object's sealed file."""
        return self._path(name).stat().st_size

    def size(self) -> int:
        """Bytes of sealed files in the store."""
        return sum(path.stat().st_size for path in self.root.rglob("*.sealed")) if self.root.is_dir() else 0


class _Unsqueeze:
    """Undoes the record's compression (none for objects stored before compression)."""

    def __init__(self, compression: str) -> None:
        if compression not in ("", "zlib"):
            raise BackupError(f"unknown compression {compression!r}")
        self._inflate = zlib.decompressobj() if compression == "zlib" else None

    def decompress(self, data: bytes) -> bytes:
        return self._inflate.decompress(data) if self._inflate is not None else data

    def flush(self) -> bytes:
        return self._inflate.flush() if self._inflate is not None else b""


def _write_json(path: Path, document: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".partial-{path.name}")
    partial.write_text(json.dumps(document, indent=2, sort_keys=True))
    partial.replace(path)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in chunks_of(handle):
            digest.update(block)
    return digest.hexdigest()
