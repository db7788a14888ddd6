"""Files sealed at rest with a data key, in chunks, with bounded memory: exports and backups.

The file is a header and a run of AES-256-GCM chunks (the construction of
"online authenticated encryption", Hoang, Reyhanitabar, Rogaway and Vizár,
2015, as Tink's streaming AEAD uses it)::

    header: MAGIC (5 bytes) ‖ key version (4 bytes, big-endian)
    chunk:  length of what follows (4 bytes, big-endian) ‖ nonce (12) ‖ ciphertext ‖ tag (16)

Each chunk's associated data is the file's own (an export names its
community and itself as :func:`vault.crypto.associated_data` names a field's
row; a backup names its set and file) plus the chunk's index and whether it is
the last. So a chunk cannot be moved, reordered, dropped or replayed in another
file, and a file cut short (no chunk marked last) fails to open instead of
yielding a partial one. Plaintext never touches the disk: only sealed chunks are written.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.crypto import NONCE_BYTES
from vault.errors import CiphertextIntegrityError

MAGIC = b"CGWX1"
TAG_BYTES = 16
DEFAULT_CHUNK_BYTES = 64 * 1024
MAX_CHUNK_BYTES = 16 * 1024 * 1024  # a forged length must not make the reader allocate without bound
_LENGTH = struct.Struct(">I")
_HEADER = len(MAGIC) + _LENGTH.size


class ByteSink(Protocol):
    """Where sealed bytes go (a file, an upload)."""

    def write(self, data: bytes, /) -> int | None:
        """Write all of ``data``."""


class ByteSource(Protocol):
    """Where sealed bytes come from (a file, a download)."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes; fewer only at the end."""

    def close(self) -> None:
        """Release the source."""


def _chunk_aad(prefix: bytes, index: int, *, last: bool) -> bytes:
    return prefix + b"|%d|%d" % (index, int(last))


class SealedWriter:
    """Seals what is written to it, chunk by chunk; :meth:`close` seals the last chunk (possibly empty)."""

    def __init__(
        self,
        sink: ByteSink,
        *,
        cipher: AESGCM,
        key_version: int,
        aad: bytes,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        if not 0 < chunk_bytes <= MAX_CHUNK_BYTES - NONCE_BYTES - TAG_BYTES:
            raise ValueError("chunk size out of range")
        self._sink, self._cipher, self._aad, self._chunk_bytes = sink, cipher, aad, chunk_bytes
        self._buffer = bytearray()
        self._index = 0
        self._closed = False
        sink.write(MAGIC + _LENGTH.pack(key_version))

    def write(self, data: bytes) -> None:
        """Buffer ``data``; seal every full chunk except the newest (it may turn out to be the last)."""
        if self._closed:
            raise ValueError("write to a closed sealed file")
        self._buffer += data
        while len(self._buffer) > self._chunk_bytes:
            self._seal(bytes(self._buffer[: self._chunk_bytes]), last=False)
            del self._buffer[: self._chunk_bytes]

    def close(self) -> None:
        """Seal what is left as the last chunk."""
        if not self._closed:
            self._seal(bytes(self._buffer), last=True)
            self._buffer.clear()
            self._closed = True

    def _seal(self, plaintext: bytes, *, last: bool) -> None:
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._cipher.encrypt(nonce, plaintext, _chunk_aad(self._aad, self._index, last=last))
        self._sink.write(_LENGTH.pack(len(sealed)) + sealed)
        self._index += 1


def read_exactly(source: ByteSource, size: int) -> bytes:
    """``size`` bytes, or fewer only when the source ends."""
    parts: list[bytes] = []
    remaining = size
    while remaining > 0:
        part = source.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def read_key_version(source: ByteSource) -> int:
    """Read the header; the key version the file was sealed with."""
    header = read_exactly(source, _HEADER)
    if len(header) != _HEADER or not header.startswith(MAGIC):
        raise CiphertextIntegrityError("not a sealed file")
    version: int = _LENGTH.unpack(header[len(MAGIC) :])[0]
    return version


def _next_sealed(source: ByteSource) -> bytes | None:
    prefix = read_exactly(source, _LENGTH.size)
    if not prefix:
        return None
    if len(prefix) != _LENGTH.size:
        raise CiphertextIntegrityError("the sealed file is cut short")
    (length,) = _LENGTH.unpack(prefix)
    if not NONCE_BYTES + TAG_BYTES <= length <= MAX_CHUNK_BYTES:
        raise CiphertextIntegrityError("a chunk of the sealed file has an impossible length")
    sealed = read_exactly(source, length)
    if len(sealed) != length:
        raise CiphertextIntegrityError("the sealed file is cut short")
    return sealed


def _open_chunk(cipher: AESGCM, sealed: bytes, aad: bytes, index: int) -> tuple[bytes, bool]:
    """The chunk's plaintext, and whether it is the last; tries "not last" first (every chunk but one)."""
    nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
    for last in (False, True):
        try:
            return cipher.decrypt(nonce, body, _chunk_aad(aad, index, last=last)), last
        except InvalidTag:
            continue
    raise CiphertextIntegrityError("a chunk of the sealed file does not open here")


def open_chunks(source: ByteSource, *, cipher: AESGCM, aad: bytes) -> Iterator[bytes]:
    """The plaintext, chunk by chunk, after :func:`read_key_version` has read the header.

    Raises:
        CiphertextIntegrityError: A chunk was altered, moved, reordered or
            dropped, data follows the last chunk, or the file ends before it.
    """
    index = 0
    while (sealed := _next_sealed(source)) is not None:
        plaintext, last = _open_chunk(cipher, sealed, aad, index)
        index += 1
        yield plaintext
        if last:
            if read_exactly(source, 1):
                raise CiphertextIntegrityError("data follows the last chunk of the sealed file")
            return
    raise CiphertextIntegrityError("the sealed file ends before its last chunk")
