"""The off-site copy: the sealed store mirrored to an S3 bucket, and brought back from it.

``BACKUP_S3_BUCKET`` (default ``AWS_S3_BUCKET``) under ``BACKUP_S3_PREFIX``
holds exactly what the store directory holds: sealed files, their records and
the manifests (only sealed bytes ever leave the machine). :func:`push` runs
after every backup and WAL run when a bucket is set: it uploads what the
bucket lacks (records and manifests last, so an object counts only once its
bytes are there) and removes what retention removed here. :func:`pull` fills
an empty directory from the bucket; ``BACKUP_DIR`` pointed at it, the restore
test and the runbook work as on the original host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

from core.s3 import S3Bucket
from operations.backups.store import BackupStore

_SUFFIXES = (".sealed", ".json")


class BackupBucket(S3Bucket):
    """The bucket and prefix of the off-site copy."""

    def __init__(self, *, bucket: str | None = None, prefix: str | None = None, client: Any = None) -> None:
        super().__init__(
            bucket=settings.BACKUP_S3_BUCKET if bucket is None else bucket,
            prefix=settings.BACKUP_S3_PREFIX if prefix is None else prefix,
            client=client,
            unset="the off-site backup copy needs BACKUP_S3_BUCKET (or AWS_S3_BUCKET)",
        )

    def keys(self) -> set[str]:
        """The relative paths in the bucket under the prefix."""
        found: set[str] = set()
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            found.update(item["Key"].removeprefix(self.prefix) for item in page.get("Contents", []))
        return found


def _local(store: BackupStore) -> set[str]:
    root = store.root
    if not root.is_dir():
        return set()
    return {
        str(path.relative_to(root)) for path in root.rglob("*")
        if path.is_file() and path.suffix in _SUFFIXES and not path.name.startswith(".partial-")
    }  # fmt: skip


def _bytes_first(relative: str) -> tuple[bool, str]:
    return (relative.endswith(".json"), relative)


def push(store: BackupStore, bucket: BackupBucket) -> tuple[int, int]:
    """Make the bucket hold what the store holds; (uploaded, removed)."""
    here, there = _local(store), bucket.keys()
    missing = sorted(here - there, key=_bytes_first)
    for relative in missing:
        bucket.client.upload_file(
            str(store.root / relative), bucket.bucket, bucket.prefix + relative,
            ExtraArgs={"ChecksumAlgorithm": "SHA256"},
        )  # fmt: skip
    gone = sorted(there - here, key=_bytes_first, reverse=True)  # records and manifests first
    for relative in gone:
        bucket.client.delete_object(Bucket=bucket.bucket, Key=bucket.prefix + relative)
    return len(missing), len(gone)


def pull(bucket: BackupBucket, into: Path) -> int:
    """Download the whole copy into ``into`` (a directory to point ``BACKUP_DIR`` at); how many files."""
    count = 0
    for relative in sorted(bucket.keys(), key=_bytes_first):
        target = (into / relative).resolve()
        if into.resolve() not in target.parents or Path(relative).suffix not in _SUFFIXES:
            continue  # never outside the directory, never anything but the store's own files
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        bucket.client.download_file(bucket.bucket, bucket.prefix + relative, str(target))
        count += 1
    return count


def push_if_configured(store: BackupStore) -> tuple[int, int] | None:
    """:func:`push` when a bucket is set (``BACKUP_S3_BUCKET``); ``None`` otherwise."""
    if not settings.BACKUP_S3_BUCKET:
        return None
    return push(store, BackupBucket())
