"""Where sealed export files live: a local directory (development, tests) or an S3 bucket (production).

Both backends only ever see sealed bytes (see :mod:`vault.sealing`);
neither stores plaintext. ``DEIDENTIFIED_EXPORT_STORAGE`` picks one: ``local``
writes under ``DEIDENTIFIED_EXPORT_DIR``; ``s3`` writes to ``AWS_S3_BUCKET``
under ``DEIDENTIFIED_EXPORT_S3_PREFIX`` with a multipart upload, so a large
export never sits whole in memory or on a local disk.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core.s3 import S3Bucket
from vault.sealing import ByteSink, ByteSource

S3_PART_BYTES = 8 * 1024 * 1024  # S3 parts but the last must be at least 5 MiB
_KEY = re.compile(r"[a-z0-9_]{1,63}/[0-9a-f-]{36}(?:\.[0-9a-f]{32})?\.[a-z]{1,8}\.sealed")


class ExportFileMissing(Exception):
    """The storage holds no file under that key (deleted, or never finished)."""


def storage_key(*, community: str, export_id: str, extension: str, attempt: str = "") -> str:
    """The key of an export's sealed file: one folder per community, one file per build ``attempt`` (32 hex)."""
    key = f"{community}/{export_id}{'.' + attempt if attempt else ''}.{extension}.sealed"
    if not _KEY.fullmatch(key):
        raise ValueError("not a valid export storage key")
    return key


class ExportStorage(Protocol):
    """Keeps sealed export files by key."""

    def writer(self, key: str) -> contextlib.AbstractContextManager[ByteSink]:
        """A sink for the file's bytes; the file exists under ``key`` only once the block exits cleanly."""

    def reader(self, key: str) -> ByteSource:
        """The file's bytes; raises :class:`ExportFileMissing` when there is none."""

    def delete(self, key: str) -> None:
        """Remove the file if it exists."""


class LocalExportStorage:
    """Files under a directory, one folder per community, both 0700; files 0600, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError("not a valid export storage key")
        return self.root / key

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[ByteSink]:
        """Write to a temporary file beside the target; rename it into place on success."""
        path = self._path(key)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=".partial-")  # mode 0600
        try:
            with os.fdopen(descriptor, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            Path(partial).replace(path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise

    def reader(self, key: str) -> ByteSource:
        """Open the file."""
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as error:
            raise ExportFileMissing(key) from error

    def delete(self, key: str) -> None:
        """Remove the file."""
        self._path(key).unlink(missing_ok=True)


class _MultipartUpload:
    """A sink that uploads a part to S3 each time :data:`S3_PART_BYTES` have gathered."""

    def __init__(self, client: Any, *, bucket: str, key: str) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._upload_id: str = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        self._parts: list[dict[str, Any]] = []
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) >= S3_PART_BYTES:
            self._send(bytes(self._buffer[:S3_PART_BYTES]))
            del self._buffer[:S3_PART_BYTES]
        return len(data)

    def _send(self, body: bytes) -> None:
        number = len(self._parts) + 1
        answer = self._client.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=body
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def complete(self) -> None:
        if self._buffer or not self._parts:
            self._send(bytes(self._buffer))
            self._buffer.clear()
        self._client.complete_multipart_upload(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
        )

    def abort(self) -> None:
        self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)


class S3ExportStorage(S3Bucket):
    """Objects in an S3 bucket under a prefix (the bucket's own encryption applies on top of ours)."""

    def __init__(self, *, bucket: str, prefix: str = "", client: Any = None) -> None:
        super().__init__(bucket=bucket, prefix=prefix, client=client, unset="S3 export storage needs AWS_S3_BUCKET")

    def _object(self, key: str) -> str:
        if not _KEY.fullmatch(key):
            raise ValueError("not a valid export storage key")
        return self.prefix + key

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[ByteSink]:
        """A multipart upload, completed when the block exits cleanly and aborted otherwise."""
        upload = _MultipartUpload(self.client, bucket=self.bucket, key=self._object(key))
        try:
            yield upload
            upload.complete()
        except BaseException:
            upload.abort()
            raise

    def reader(self, key: str) -> ByteSource:
        """The object's body, streamed."""
        try:
            body: ByteSource = self.client.get_object(Bucket=self.bucket, Key=self._object(key))["Body"]
        except self.client.exceptions.NoSuchKey as error:
            raise ExportFileMissing(key) from error
        return body

    def delete(self, key: str) -> None:
        """Remove the object."""
        self.client.delete_object(Bucket=self.bucket, Key=self._object(key))


def get_storage() -> ExportStorage:
    """The backend ``DEIDENTIFIED_EXPORT_STORAGE`` names."""
    backend = settings.DEIDENTIFIED_EXPORT_STORAGE
    if backend == "local":
        return LocalExportStorage(Path(settings.DEIDENTIFIED_EXPORT_DIR))
    if backend == "s3":
        return S3ExportStorage(bucket=settings.AWS_S3_BUCKET, prefix=settings.DEIDENTIFIED_EXPORT_S3_PREFIX)
    raise ImproperlyConfigured(f"DEIDENTIFIED_EXPORT_STORAGE must be local or s3, not {backend!r}")
