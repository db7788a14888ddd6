"""The backup schedule's tasks (``CELERY_BEAT_SCHEDULE``): the WAL every few minutes, a base backup daily.

One of each runs at a time (Redis locks that expire on their own), and only
one of them reads the replication slot: a base backup also holds the WAL
lock (waiting a minute at a time for a WAL run to end), and the WAL task
skips a turn while either runs.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from core.redis import get_redis
from operations.backups.base import archive_wal, take_backup
from operations.backups.logical import backed_up_communities, community_backup
from operations.backups.remote import push_if_configured
from operations.backups.store import BackupStore

logger = logging.getLogger(__name__)
_LOCK_SECONDS = {"wal": 600, "base": 3600}


def _locked(kind: str) -> bool:
    """Take the kind's lock; ``False`` when another run holds it."""
    return bool(get_redis().set(f"backup:running:{kind}", "1", nx=True, ex=_LOCK_SECONDS[kind]))


def _unlock(kind: str) -> None:
    get_redis().delete(f"backup:running:{kind}")


@shared_task(acks_late=True, reject_on_worker_lost=True)
def backup_wal() -> int:
    """Seal the WAL completed since the last run; how many segments."""
    if not _locked("wal"):
        logger.info("a WAL archive run is still going: this turn is skipped")
        return 0
    try:
        sealed = len(archive_wal())
        push_if_configured(BackupStore())
    finally:
        _unlock("wal")
    return sealed


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=10, default_retry_delay=60)
def backup_base(self: Task[Any, Any]) -> str:
    """Take the daily base backup (and apply the retention); its id. It also holds the WAL lock (one slot reader)."""
    if not _locked("base"):
        logger.warning("a base backup is still going: this one is skipped")
        return ""
    if not _locked("wal"):
        _unlock("base")
        raise self.retry()  # a WAL run is reading the slot: again in a minute
    try:
        backup = take_backup()
        for slug in backed_up_communities():
            community_backup(slug)
        push_if_configured(BackupStore())
    finally:
        _unlock("wal")
        _unlock("base")
    logger.info("base backup %s: %s sealed bytes in %.1f s", backup.backup_id, backup.sealed_bytes, backup.seconds)
    return backup.backup_id
