"""Export storage: local files written atomically with private modes, S3 in parts, keys that stay in their folder."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from pytest_django import Settings

from services.exports.storage import ExportFileMissing, LocalExportStorage, S3ExportStorage, get_storage, storage_key
from tests.support.exports import sealed_files

KEY_NAME = storage_key(community="alpha", export_id=str(uuid.UUID(int=7)), extension="csv")


def interrupted_write(storage: LocalExportStorage | S3ExportStorage, key: str) -> None:
    with storage.writer(key) as sink:
        sink.write(b"half a file")
        raise RuntimeError("worker died")


def test_local_storage_writes_atomically_with_private_modes(tmp_path: Path) -> None:
    storage = LocalExportStorage(tmp_path / "exports")

    with pytest.raises(RuntimeError, match="worker died"):
        interrupted_write(storage, KEY_NAME)
    assert sealed_files(tmp_path) == []
    with pytest.raises(ExportFileMissing):
        storage.reader(KEY_NAME)

    with storage.writer(KEY_NAME) as sink:
        sink.write(b"sealed bytes")
    source = storage.reader(KEY_NAME)
    assert source.read() == b"sealed bytes"
    source.close()
    path = tmp_path / "exports" / KEY_NAME
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "exports").stat().st_mode & 0o777) == "0o700"
    storage.delete(KEY_NAME)
    assert not path.exists()


@pytest.mark.parametrize("key", ["../alpha/x.csv.sealed", "alpha/../../etc/passwd", "/abs/path", "alpha/x.csv"])
def test_storage_keys_cannot_leave_their_folder(key: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="storage key"):
        LocalExportStorage(tmp_path).reader(key)
    with pytest.raises(ValueError, match="storage key"):
        storage_key(community="alpha/..", export_id="x", extension="csv")


class FakeS3:
    """The four multipart calls and get/delete, in memory (what S3ExportStorage uses of boto3's client)."""

    class exceptions:  # noqa: N801 - boto3's attribute name
        class NoSuchKey(Exception):
            pass

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.aborted: list[str] = []

    def create_multipart_upload(self, *, Bucket: str, Key: str) -> dict[str, str]:  # noqa: N803
        upload_id = f"upload-{len(self.uploads)}"
        self.uploads[upload_id] = {}
        return {"UploadId": upload_id}

    def upload_part(self, *, Bucket: str, Key: str, UploadId: str, PartNumber: int, Body: bytes) -> dict[str, str]:  # noqa: N803
        self.uploads[UploadId][PartNumber] = Body
        return {"ETag": f"etag-{PartNumber}"}

    def complete_multipart_upload(
        self,
        *,
        Bucket: str,  # noqa: N803
        Key: str,  # noqa: N803
        UploadId: str,  # noqa: N803
        MultipartUpload: dict[str, Any],  # noqa: N803
    ) -> None:
        parts = self.uploads.pop(UploadId)
        assert [part["PartNumber"] for part in MultipartUpload["Parts"]] == sorted(parts)
        self.objects[f"{Bucket}/{Key}"] = b"".join(parts[number] for number in sorted(parts))

    def abort_multipart_upload(self, *, Bucket: str, Key: str, UploadId: str) -> None:  # noqa: N803
        self.uploads.pop(UploadId)
        self.aborted.append(Key)

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        if f"{Bucket}/{Key}" not in self.objects:
            raise self.exceptions.NoSuchKey(Key)
        return {"Body": io.BytesIO(self.objects[f"{Bucket}/{Key}"])}

    def delete_object(self, *, Bucket: str, Key: str) -> None:  # noqa: N803
        self.objects.pop(f"{Bucket}/{Key}", None)


def test_s3_storage_uploads_in_parts_and_streams_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.exports.storage.S3_PART_BYTES", 10)
    client = FakeS3()
    storage = S3ExportStorage(bucket="exports-bucket", prefix="deid/", client=client)

    with storage.writer(KEY_NAME) as sink:
        for _ in range(5):
            sink.write(b"0123456")
    with pytest.raises(RuntimeError, match="worker died"):
        interrupted_write(storage, KEY_NAME.replace("alpha", "beta"))

    assert client.objects == {f"exports-bucket/deid/{KEY_NAME}": b"0123456" * 5}
    assert client.aborted == ["deid/" + KEY_NAME.replace("alpha", "beta")]
    assert storage.reader(KEY_NAME).read() == b"0123456" * 5
    storage.delete(KEY_NAME)
    with pytest.raises(ExportFileMissing):
        storage.reader(KEY_NAME)


def test_an_empty_s3_upload_still_has_one_part() -> None:
    client = FakeS3()
    storage = S3ExportStorage(bucket="b", client=client)

    with storage.writer(KEY_NAME):
        pass

    assert client.objects == {f"b/{KEY_NAME}": b""}


def test_the_storage_backend_comes_from_settings(settings: Settings, tmp_path: Path) -> None:
    settings.DEIDENTIFIED_EXPORT_STORAGE, settings.DEIDENTIFIED_EXPORT_DIR = "local", tmp_path
    assert isinstance(get_storage(), LocalExportStorage)

    settings.DEIDENTIFIED_EXPORT_STORAGE, settings.AWS_S3_BUCKET = "s3", "phi-exports"
    storage = get_storage()
    assert isinstance(storage, S3ExportStorage)
    assert storage.bucket == "phi-exports"

    settings.AWS_S3_BUCKET = ""
    with pytest.raises(Exception, match="AWS_S3_BUCKET"):
        get_storage()
    settings.DEIDENTIFIED_EXPORT_STORAGE = "ftp"
    with pytest.raises(Exception, match="local or s3"):
        get_storage()
