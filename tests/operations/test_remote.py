"""The off-site copy: the sealed store mirrored to S3 (only sealed bytes leave), and brought back whole."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from operations.backups.remote import BackupBucket, pull, push, push_if_configured
from operations.backups.store import BackupStore

pytestmark = pytest.mark.django_db  # the local key provider's file is given back after each test
SEGMENT = "wal/000000010000000000000007"


class FakeS3:
    """The calls the mirror makes, on a dict of objects; uploads in the order made."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploaded: list[str] = []

    def upload_file(self, filename: str, bucket: str, key: str, ExtraArgs: dict[str, Any]) -> None:  # noqa: N803
        assert ExtraArgs == {"ChecksumAlgorithm": "SHA256"}
        self.objects[key] = Path(filename).read_bytes()
        self.uploaded.append(key)

    def delete_object(self, Bucket: str, Key: str) -> None:  # noqa: N803
        del self.objects[Key]

    def download_file(self, bucket: str, key: str, filename: str) -> None:
        Path(filename).write_bytes(self.objects[key])

    def get_paginator(self, name: str) -> Any:
        objects = self.objects

        class Paginator:
            def paginate(self, Bucket: str, Prefix: str) -> list[dict[str, Any]]:  # noqa: N803
                return [{"Contents": [{"Key": key} for key in sorted(objects) if key.startswith(Prefix)]}]

        return Paginator()


@pytest.fixture
def store(tmp_path: Path) -> BackupStore:
    store = BackupStore(tmp_path / "store")
    store.put(SEGMENT, [b"segment seven"])
    store.put("base/20261202T000000Z/base.tar", [b"the cluster"])
    store.write_manifest("20261202T000000Z", {"backup_id": "20261202T000000Z", "started_at": "2026-12-02T00:00+00:00"})
    return store


def test_the_bucket_gets_the_sealed_files_before_their_records_and_only_once(store: BackupStore) -> None:
    client = FakeS3()
    bucket = BackupBucket(bucket="backups", prefix="gateway/", client=client)
    assert push(store, bucket) == (5, 0)
    assert set(client.objects) == {
        f"gateway/{SEGMENT}.sealed", f"gateway/{SEGMENT}.json", "gateway/base/20261202T000000Z/base.tar.sealed",
        "gateway/base/20261202T000000Z/base.tar.json", "gateway/base/20261202T000000Z/manifest.json",
    }  # fmt: skip
    assert all(key.endswith(".sealed") for key in client.uploaded[:2])  # bytes first, records and manifests after
    assert b"segment seven" not in client.objects[f"gateway/{SEGMENT}.sealed"]  # sealed, never plain
    assert push(store, bucket) == (0, 0)


def test_what_retention_removes_here_goes_from_the_bucket_too(store: BackupStore) -> None:
    client = FakeS3()
    bucket = BackupBucket(bucket="backups", prefix="gateway/", client=client)
    push(store, bucket)
    store.delete(SEGMENT)
    assert push(store, bucket) == (0, 2)
    assert not any("wal/" in key for key in client.objects)


def test_the_copy_comes_back_whole_and_opens(store: BackupStore, tmp_path: Path) -> None:
    client = FakeS3()
    bucket = BackupBucket(bucket="backups", prefix="gateway/", client=client)
    push(store, bucket)
    shutil.rmtree(store.root)
    client.objects["gateway/../outside.json"] = b"{}"  # a key that would land outside: never written
    back = tmp_path / "pulled"
    assert pull(bucket, back) == 5
    restored = BackupStore(back)
    assert b"".join(restored.read(SEGMENT)) == b"segment seven"
    assert restored.backups() == ["20261202T000000Z"]
    assert not (tmp_path / "outside.json").exists()


def test_without_a_bucket_nothing_is_pushed(store: BackupStore) -> None:
    with override_settings(BACKUP_S3_BUCKET=""):
        assert push_if_configured(store) is None
