"""The archive store: read-only local files or S3 objects under Object Lock, newest last, never a path of one's own."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from security.audit.archive_storage import ArchiveMissing, LocalArchiveStorage, S3ArchiveStorage, archive_key

WHEN = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
RETAIN = WHEN + datetime.timedelta(days=2196)


def sealed(tmp_path: Path, content: bytes = b"sealed bytes") -> Path:
    path = tmp_path / "archive.tar.sealed"
    path.write_bytes(content)
    return path


def test_a_key_names_the_community_and_the_time() -> None:
    assert archive_key(community="gamma", created_at=WHEN) == "gamma/20261201T120000000000Z.tar.sealed"
    with pytest.raises(ValueError, match="not a valid archive key"):
        archive_key(community="../etc", created_at=WHEN)


def test_a_local_archive_is_read_only_and_the_newest_is_found(tmp_path: Path) -> None:
    storage = LocalArchiveStorage(tmp_path / "store")
    older = archive_key(community="gamma", created_at=WHEN)
    newer = archive_key(community="gamma", created_at=WHEN + datetime.timedelta(seconds=1))

    storage.put(older, sealed(tmp_path, b"old"), retain_until=RETAIN)
    storage.put(newer, sealed(tmp_path, b"new"), retain_until=RETAIN)

    assert storage.latest("gamma") == newer
    assert storage.latest("delta") is None
    with storage.reader(newer) as handle:
        assert handle.read() == b"new"
    assert (tmp_path / "store" / newer).stat().st_mode & 0o777 == 0o400
    assert (tmp_path / "store" / "gamma").stat().st_mode & 0o777 == 0o700
    with pytest.raises(ArchiveMissing):
        storage.reader(archive_key(community="delta", created_at=WHEN))
    with pytest.raises(ValueError, match="not a valid archive key"):
        storage.reader("gamma/../../secret.tar.sealed")


class FakeS3:
    """The calls the S3 store makes, recorded."""

    class exceptions:  # noqa: N801 - boto3's spelling
        class NoSuchKey(Exception):
            pass

    def __init__(self) -> None:
        self.uploads: list[tuple[str, str, str, dict[str, Any]]] = []
        self.objects: dict[str, bytes] = {}

    def upload_file(self, filename: str, bucket: str, key: str, ExtraArgs: dict[str, Any]) -> None:  # noqa: N803
        self.uploads.append((filename, bucket, key, ExtraArgs))
        self.objects[key] = Path(filename).read_bytes()

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        objects = self.objects

        class Paginator:
            def paginate(self, Bucket: str, Prefix: str) -> list[dict[str, Any]]:  # noqa: N803
                return [{"Contents": [{"Key": key} for key in objects if key.startswith(Prefix)]}, {}]

        return Paginator()

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        if Key not in self.objects:
            raise self.exceptions.NoSuchKey(Key)
        return {"Body": None}


def test_an_s3_archive_is_written_under_object_lock_until_the_retention_ends(tmp_path: Path) -> None:
    client = FakeS3()
    storage = S3ArchiveStorage(bucket="archives", prefix="audit-archives/", client=client)
    key = archive_key(community="gamma", created_at=WHEN)

    storage.put(key, sealed(tmp_path), retain_until=RETAIN)

    ((_, bucket, name, extra),) = client.uploads
    assert (bucket, name) == ("archives", f"audit-archives/{key}")
    assert extra == {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": RETAIN, "ChecksumAlgorithm": "SHA256"}
    assert storage.latest("gamma") == key
    assert storage.latest("delta") is None
    with pytest.raises(ArchiveMissing):
        storage.reader(archive_key(community="delta", created_at=WHEN))


def test_an_unknown_object_lock_mode_is_refused() -> None:
    with pytest.raises(Exception, match="COMPLIANCE or GOVERNANCE"):
        S3ArchiveStorage(bucket="archives", lock_mode="NONE", client=FakeS3())
