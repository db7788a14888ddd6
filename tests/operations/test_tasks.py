"""The backup schedule: beat's entries, and only one reader of the replication slot at a time."""

from __future__ import annotations

from unittest import mock

import pytest
import redis
from celery.exceptions import Retry
from celery.schedules import crontab
from django.conf import settings

from operations import tasks
from operations.backups.base import BaseBackup


def test_beat_archives_the_wal_every_few_minutes_and_backs_up_daily() -> None:
    wal, daily = settings.CELERY_BEAT_SCHEDULE["backup-wal"], settings.CELERY_BEAT_SCHEDULE["backup-daily"]
    assert (wal["task"], wal["schedule"]) == ("operations.tasks.backup_wal", float(settings.BACKUP_WAL_SECONDS))
    assert daily["task"] == "operations.tasks.backup_base"
    assert daily["schedule"] == crontab(hour=settings.BACKUP_DAILY_HOUR, minute=settings.BACKUP_DAILY_MINUTE)


def test_a_wal_turn_is_skipped_while_another_reads_the_slot(clean_redis: redis.Redis) -> None:
    with mock.patch.object(tasks, "archive_wal", return_value=["wal/1", "wal/2"]) as archive:
        clean_redis.set("backup:running:wal", "1")
        assert tasks.backup_wal.apply().get() == 0
        archive.assert_not_called()
        clean_redis.delete("backup:running:wal")
        assert tasks.backup_wal.apply().get() == 2
    assert not clean_redis.exists("backup:running:wal")  # released after the run


def test_a_base_backup_waits_for_a_wal_run_and_holds_both_locks_while_it_runs(clean_redis: redis.Redis) -> None:
    held: list[bool] = []

    def backup() -> BaseBackup:
        held.append(bool(clean_redis.exists("backup:running:wal") and clean_redis.exists("backup:running:base")))
        return BaseBackup("20261202T000000Z", "gateway-backup-20261202T000000Z", 10, 1.0, [])

    with (
        mock.patch.object(tasks, "take_backup", side_effect=backup),
        mock.patch.object(tasks, "backed_up_communities", return_value=["alpha"]),
        mock.patch.object(tasks, "community_backup") as logical,
    ):
        clean_redis.set("backup:running:wal", "1")
        with pytest.raises(Retry):
            tasks.backup_base.apply(throw=True)
        assert not clean_redis.exists("backup:running:base")  # given back for the retry
        clean_redis.delete("backup:running:wal")
        assert tasks.backup_base.apply().get() == "20261202T000000Z"
    assert held == [True]
    logical.assert_called_once_with("alpha")  # every community's logical backup follows the base one
    assert not clean_redis.keys("backup:running:*")
