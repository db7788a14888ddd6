"""Audit tasks: signing checkpoints, building exports, telling compliance officers about break-glass."""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from celery import current_app as celery_app
from celery import shared_task
from django.conf import settings
from django.utils import timezone
from django_tenants.utils import schema_context
from redis.exceptions import RedisError

from core.errors import ServiceUnavailable
from core.exports import ExportStatus
from core.redis import get_redis
from core.schema import tenant_connection
from security.audit.checkpoints import checkpoint_create
from security.audit.exports import EXTENSIONS, export_to_path
from security.audit.models import AuditExport, PendingEvent
from security.audit.sequencer import audit_chain, enqueue_chain, queued_flag
from security.tasks import CommunityTask
from tenants.models import Community, CommunityStatus

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True, max_retries=5, default_retry_delay=30)
def checkpoint_schema(schema: str) -> int | None:
    """Sign a checkpoint over ``schema``'s chain head (the public schema or an active community's)."""
    if not _keeps_a_log(schema):
        return None
    with schema_context(schema):
        checkpoint = checkpoint_create()
    return checkpoint.sequence if checkpoint else None


def _keeps_a_log(schema: str) -> bool:
    return (
        schema == "public"
        or Community.objects.filter(schema_name=schema).exclude(status=CommunityStatus.OFFBOARDED).exists()
    )


def _logs() -> list[str]:
    """The schemas that keep a log being written: public and every community not offboarded."""
    return [
        "public",
        *Community.objects.exclude(status=CommunityStatus.OFFBOARDED).values_list("schema_name", flat=True),
    ]


@shared_task(acks_late=True, reject_on_worker_lost=True)
def chain_schema(schema: str) -> int:
    """Chain ``schema``'s staged events for as long as requests keep staging them (``chain_later`` asks).

    While it works the community's flag stays set, so committing requests queue
    no further tasks: the task chains what is staged, waits
    ``AUDIT_CHAIN_SIGNAL_MS``, and chains again, in batches as large as that
    wait gathers. When a round finds nothing it clears the flag (the next
    commit asks again) and takes one more look that long afterwards: a commit
    that skipped asking did so because its process asked less than that long
    before, so it is at most that much younger than an ask this task had seen,
    and nothing committed is left staged. After ``AUDIT_CHAIN_TASK_SECONDS``
    it hands over to a new task at the back of the queue, so that other
    communities get their turn.
    """
    if not _keeps_a_log(schema):
        _lower_flag(schema)
        return 0
    wait = settings.AUDIT_CHAIN_SIGNAL_MS / 1000
    deadline = time.monotonic() + settings.AUDIT_CHAIN_TASK_SECONDS
    chained = 0
    with schema_context(schema):
        while True:
            count = audit_chain()
            chained += count
            if count == 0:
                _lower_flag(schema)
                time.sleep(wait)
                count = audit_chain()  # the one more look
                if count == 0:
                    return chained
                chained += count
                _raise_flag(schema)  # still busy: commits need not ask
            if time.monotonic() >= deadline:
                _hand_over(schema)
                return chained
            time.sleep(wait)


def _lower_flag(schema: str) -> None:
    try:
        get_redis().delete(queued_flag(schema))
    except RedisError as error:  # the flag expires on its own
        logger.warning("could not clear the chain flag of %s (%s)", schema, type(error).__name__)


def _raise_flag(schema: str) -> None:
    with contextlib.suppress(RedisError):  # without it, commits ask for another task: harmless
        get_redis().set(queued_flag(schema), "1", ex=settings.AUDIT_CHAIN_FLAG_SECONDS)


def _hand_over(schema: str) -> None:
    """Queue a new task for ``schema`` (the flag stays set, renewed); failing that, let commits ask again."""
    _raise_flag(schema)
    if not enqueue_chain(schema):
        _lower_flag(schema)


@shared_task(acks_late=True)
def checkpoint_all() -> int:
    """Periodic (``AUDIT_CHECKPOINT_SECONDS``): sign every log whose head has moved; return how many."""
    signed = 0
    for schema in _logs():
        with schema_context(schema):
            if checkpoint_create() is not None:
                signed += 1
    return signed


@shared_task(acks_late=True)
def chain_all() -> int:
    """Periodic (``AUDIT_CHAIN_SECONDS``): chain events left staged (their process died first); return how many."""
    chained = 0
    for schema in _logs():
        with schema_context(schema):
            if PendingEvent.objects.exists():  # one cheap query for a log with nothing staged
                chained += audit_chain()
    return chained


def export_path(export: AuditExport) -> Path:
    """Where an export's file lives: one directory per schema, 0700."""
    return (
        Path(settings.AUDIT_EXPORT_DIR) / tenant_connection().schema_name / f"{export.id}.{EXTENSIONS[export.format]}"
    )


def export_build(export: AuditExport) -> AuditExport:
    """Build ``export`` in the current schema; record success or a PHI-free failure."""
    path = export_path(export)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        written = export_to_path(path, kind=export.format, since=export.since, until=export.until)
    except ServiceUnavailable:
        raise  # transient (the key provider, say): stays pending, the task is retried
    except Exception as error:
        export.status, export.error = ExportStatus.FAILED, type(error).__name__
        export.finished_at = timezone.now()
        export.save(update_fields=["status", "error", "finished_at"])
        raise
    export.status, export.manifest, export.file_name = ExportStatus.READY, written.manifest, path.name
    export.finished_at = timezone.now()
    export.save(update_fields=["status", "manifest", "file_name", "finished_at"])
    return export


class AuditExportTask(CommunityTask):
    """Build one audit export; ``audit.export`` is asked of the policy again when the task runs."""

    name = "security.audit.tasks.audit_export"
    policy_action = "audit.export"
    policy_resource_type = "audit"

    def run(self, export_id: str, **_: Any) -> str:
        """Build the export (the base class has set the community's schema)."""
        export = AuditExport.objects.get(pk=export_id)
        if export.status != ExportStatus.PENDING:
            return str(export.status)
        return str(export_build(export).status)


audit_export_task = celery_app.register_task(AuditExportTask())


def parse_time(value: str) -> datetime:
    """An ISO 8601 time with its offset (command line and API)."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("give the time with its offset, e.g. 2026-01-01T00:00:00Z")
    return parsed
