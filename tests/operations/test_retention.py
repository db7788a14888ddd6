"""Retention of sealed backups: 30 days of daily ones, the first of each month archived, WAL from the oldest on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest

from operations.backups.errors import BackupError
from operations.backups.restore import _stage_wal
from operations.backups.retention import apply_retention, wal_of
from operations.backups.store import BackupStore

pytestmark = pytest.mark.django_db  # the local key provider's file is given back after each test
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def segment(number: int) -> str:
    return f"wal/{1:08X}{0:08X}{number:08X}"


def backup(store: BackupStore, started: datetime, start: int, end: int) -> str:
    """A base backup started at ``started`` that needs the WAL segments ``start`` to ``end``."""
    backup_id = started.strftime("%Y%m%dT%H%M%SZ")
    store.put(f"base/{backup_id}/base.tar", [b"tar of " + backup_id.encode()])
    store.write_manifest(backup_id, {
        "backup_id": backup_id, "started_at": started.isoformat(), "base": f"base/{backup_id}/base.tar",
        "start_wal": segment(start).removeprefix("wal/"), "end_wal": segment(end).removeprefix("wal/"),
    })  # fmt: skip
    return backup_id


@pytest.fixture
def stores(tmp_path: Path) -> tuple[BackupStore, BackupStore]:
    """A daily store with backups on 5 Oct, 20 Oct, 3 Nov, 25 Nov and 1 Dec, WAL 1 to 12."""
    daily, archive = BackupStore(tmp_path / "daily"), BackupStore(tmp_path / "archive")
    for number in range(1, 13):
        daily.put(segment(number), [f"segment {number}".encode()])
    for day, start, end in ((datetime(2026, 10, 5, tzinfo=UTC), 1, 2), (datetime(2026, 10, 20, tzinfo=UTC), 3, 4),
                            (datetime(2026, 11, 3, tzinfo=UTC), 5, 6), (datetime(2026, 11, 25, tzinfo=UTC), 7, 8),
                            (datetime(2026, 12, 1, tzinfo=UTC), 9, 10)):  # fmt: skip
        backup(daily, day, start, end)
    return daily, archive


def test_the_first_backup_of_each_month_is_archived_with_the_wal_it_needs(
    stores: tuple[BackupStore, BackupStore],
) -> None:
    daily, archive = stores
    pruned = apply_retention(daily, archive, now=NOW)
    assert pruned.archived == ["20261005T000000Z", "20261103T000000Z", "20261201T000000Z"]
    assert archive.backups() == pruned.archived
    assert archive.names("wal") == [segment(1), segment(2), segment(5), segment(6), segment(9), segment(10)]
    assert b"".join(archive.read("base/20261103T000000Z/base.tar")) == b"tar of 20261103T000000Z"
    assert apply_retention(daily, archive, now=NOW).archived == []  # once


def test_daily_backups_older_than_30_days_go_and_so_does_the_wal_before_the_oldest_kept(
    stores: tuple[BackupStore, BackupStore],
) -> None:
    daily, archive = stores
    pruned = apply_retention(daily, archive, now=NOW)
    assert pruned.removed == ["20261005T000000Z", "20261020T000000Z"]
    assert daily.backups() == ["20261103T000000Z", "20261125T000000Z", "20261201T000000Z"]
    assert daily.names("wal") == [segment(number) for number in range(5, 13)]  # every moment since 3 Nov
    assert pruned.wal_removed == 4
    assert wal_of(daily, "20261125T000000Z") == [segment(7), segment(8)]


def test_the_newest_backup_stays_however_old(tmp_path: Path) -> None:
    daily, archive = BackupStore(tmp_path / "daily"), BackupStore(tmp_path / "archive")
    only = backup(daily, NOW - timedelta(days=400), 1, 1)
    apply_retention(daily, archive, now=NOW)
    assert daily.backups() == [only]


def test_monthly_archives_go_after_their_own_retention(stores: tuple[BackupStore, BackupStore]) -> None:
    daily, archive = stores
    apply_retention(daily, archive, now=NOW)
    pruned = apply_retention(daily, archive, now=datetime(2027, 11, 10, tzinfo=UTC))
    assert pruned.archive_removed == ["20261005T000000Z", "20261103T000000Z"]
    assert archive.backups() == ["20261201T000000Z"]
    assert archive.names("wal") == [segment(9), segment(10)]


def test_an_altered_object_is_neither_archived_nor_read(stores: tuple[BackupStore, BackupStore]) -> None:
    daily, archive = stores
    sealed = daily.root / "base" / "20261005T000000Z" / "base.tar.sealed"
    sealed.chmod(0o600)
    sealed.write_bytes(sealed.read_bytes()[:-1] + b"\x00")
    with pytest.raises(BackupError, match="checksum"):
        apply_retention(daily, archive, now=NOW)
    with pytest.raises(BackupError, match="checksum"):
        list(daily.read("base/20261005T000000Z/base.tar"))
    assert archive.backups() == []


def test_each_community_keeps_its_logical_backups_for_30_days_and_always_its_newest(
    stores: tuple[BackupStore, BackupStore],
) -> None:
    daily, archive = stores
    for slug, days in (("alpha", (40, 20, 1)), ("beta", (45,))):
        for age in days:
            folder = f"community/{slug}/{(NOW - timedelta(days=age)).strftime('%Y%m%dT%H%M%SZ')}"
            daily.put(f"{folder}/schema.dump", [b"dump"])
            daily.write_manifest_at(folder, {"slug": slug, "schema": slug, "table_counts": {}})
    pruned = apply_retention(daily, archive, now=NOW)
    kept = daily.community_backups()
    assert [folder.rsplit("/", 1)[-1] for folder in kept["alpha"]] == ["20261112T120000Z", "20261201T120000Z"]
    assert [folder.rsplit("/", 1)[-1] for folder in kept["beta"]] == ["20261018T120000Z"]  # its only one stays
    assert "community/alpha/20261023T120000Z" in pruned.removed
    assert not (daily.root / "community/alpha/20261023T120000Z").exists()


def test_an_object_stored_before_compression_still_reads(tmp_path: Path) -> None:
    old = BackupStore(tmp_path)
    with mock.patch("operations.backups.store.zlib.compressobj", return_value=_Identity()):
        old.put(segment(1), [b"segment one"])
    old_record = old.root / "wal" / f"{segment(1).removeprefix('wal/')}.json"
    document = json.loads(old_record.read_text())
    del document["compression"]
    old_record.write_text(json.dumps(document))
    assert b"".join(old.read(segment(1))) == b"segment one"


class _Identity:
    """A compressor that leaves the bytes as they are (what an object stored before compression holds)."""

    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def test_a_restore_opens_only_the_wal_from_its_base_backup_on(tmp_path: Path) -> None:
    store = BackupStore(tmp_path / "store")
    for number in range(1, 6):
        store.put(segment(number), [f"segment {number}".encode()])
    store.put("wal/00000002.history", [b"history"])
    staged = tmp_path / "archive"
    _stage_wal(store, staged, segment(3).removeprefix("wal/"))
    wanted = ["00000002.history", *(segment(number).removeprefix("wal/") for number in (3, 4, 5))]
    assert sorted(path.name for path in staged.iterdir()) == sorted(wanted)
    assert (staged / segment(4).removeprefix("wal/")).read_bytes() == b"segment 4"
