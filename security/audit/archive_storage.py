"""Where sealed audit archives are kept: a local directory (development, tests) or S3 under Object Lock (production).

The same pattern as the de-identified exports' storage
(``services.exports.storage``, which this layer may not import): both
backends only ever see sealed bytes, one folder per community, and
``AUDIT_ARCHIVE_STORAGE`` picks one. An archive is never deleted by the
service: in S3 each object is written with an Object Lock retain-until date
(``AUDIT_ARCHIVE_OBJECT_LOCK_MODE``, compliance by default, so not even the
bucket's owner can shorten it); locally the file is made read-only.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core.s3 import S3Bucket

# <community>/<UTC time of the archive>.tar.sealed: keys sort by time, so the last is the newest.
_KEY = re.compile(r"([a-z][a-z0-9_]{2,39})/([0-9]{8}T[0-9]{12}Z)\.tar\.sealed")


class ArchiveMissing(Exception):
    """The store holds no archive under that key (or none at all for the community)."""


def archive_key(*, community: str, created_at: datetime) -> str:
    """The key of a community's archive made at ``created_at`` (UTC, to the microsecond)."""
    key = f"{community}/{created_at.strftime('%Y%m%dT%H%M%S%fZ')}.tar.sealed"
    if not _KEY.fullmatch(key):
        raise ValueError("not a valid archive key")
    return key


def _checked(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError("not a valid archive key")
    return key


class ArchiveStorage(Protocol):
    """Keeps sealed archives by key, for the retention period; never deletes one."""

    def put(self, key: str, source: Path, *, retain_until: datetime) -> None:
        """Store the sealed file ``source`` under ``key``, kept at least until ``retain_until``."""

    def reader(self, key: str) -> IO[bytes]:
        """The archive's bytes; raises :class:`ArchiveMissing` when there is none."""

    def latest(self, community: str) -> str | None:
        """The key of the community's newest archive, or None."""


class LocalArchiveStorage:
    """Files under a directory, one folder per community (both 0700); each file read-only (0400)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, key: str, source: Path, *, retain_until: datetime) -> None:
        """Copy into place atomically (a temporary file beside the target, then a rename)."""
        path = self.root / _checked(key)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        try:
            with os.fdopen(descriptor, "wb") as handle, source.open("rb") as sealed:
                shutil.copyfileobj(sealed, handle)
                handle.flush()
                os.fsync(handle.fileno())
            Path(partial).chmod(0o400)
            Path(partial).replace(path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise

    def reader(self, key: str) -> IO[bytes]:
        """Open the file."""
        try:
            return (self.root / _checked(key)).open("rb")
        except FileNotFoundError as error:
            raise ArchiveMissing(key) from error

    def latest(self, community: str) -> str | None:
        """The newest well-named file of the community's folder."""
        folder = self.root / community
        keys = sorted(f"{community}/{path.name}" for path in folder.glob("*.tar.sealed")) if folder.is_dir() else []
        keys = [key for key in keys if _KEY.fullmatch(key)]
        return keys[-1] if keys else None


class S3ArchiveStorage(S3Bucket):
    """Objects in an S3 bucket with Object Lock enabled, under a prefix, each with a retain-until date."""

    def __init__(self, *, bucket: str, prefix: str = "", lock_mode: str = "COMPLIANCE", client: Any = None) -> None:
        super().__init__(bucket=bucket, prefix=prefix, client=client, unset="S3 archive storage needs AWS_S3_BUCKET")
        if lock_mode not in ("COMPLIANCE", "GOVERNANCE"):
            raise ImproperlyConfigured(
                f"AUDIT_ARCHIVE_OBJECT_LOCK_MODE must be COMPLIANCE or GOVERNANCE, not {lock_mode!r}"
            )
        self.lock_mode = lock_mode

    def put(self, key: str, source: Path, *, retain_until: datetime) -> None:
        """``upload_file`` (multipart for large files) with the Object Lock mode and retain-until date.

        S3 requires a checksum on every object written with a retention
        period: SHA-256, computed by the SDK.
        """
        self.client.upload_file(
            str(source),
            self.bucket,
            self.prefix + _checked(key),
            ExtraArgs={
                "ObjectLockMode": self.lock_mode,
                "ObjectLockRetainUntilDate": retain_until,
                "ChecksumAlgorithm": "SHA256",
            },
        )

    def reader(self, key: str) -> IO[bytes]:
        """The object's body, streamed."""
        try:
            body: IO[bytes] = self.client.get_object(Bucket=self.bucket, Key=self.prefix + _checked(key))["Body"]
        except self.client.exceptions.NoSuchKey as error:
            raise ArchiveMissing(key) from error
        return body

    def latest(self, community: str) -> str | None:
        """The newest well-named object under ``<prefix><community>/``."""
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{community}/"):
            keys.extend(item["Key"].removeprefix(self.prefix) for item in page.get("Contents", []))
        keys = sorted(key for key in keys if _KEY.fullmatch(key))
        return keys[-1] if keys else None


def get_archive_storage() -> ArchiveStorage:
    """The backend ``AUDIT_ARCHIVE_STORAGE`` names."""
    backend = settings.AUDIT_ARCHIVE_STORAGE
    if backend == "local":
        return LocalArchiveStorage(Path(settings.AUDIT_ARCHIVE_DIR))
    if backend == "s3":
        return S3ArchiveStorage(
            bucket=settings.AWS_S3_BUCKET,
            prefix=settings.AUDIT_ARCHIVE_S3_PREFIX,
            lock_mode=settings.AUDIT_ARCHIVE_OBJECT_LOCK_MODE,
        )
    raise ImproperlyConfigured(f"AUDIT_ARCHIVE_STORAGE must be local or s3, not {backend!r}")
