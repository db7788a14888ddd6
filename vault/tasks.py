"""Celery tasks of key management: re-encryption after a rotation runs on a worker."""

from __future__ import annotations

from celery import shared_task
from django_tenants.utils import schema_context

from tenants.models import CommunityStatus
from tenants.selectors import community_get
from vault.rotation import reencrypt_community


@shared_task(acks_late=True, reject_on_worker_lost=True, max_retries=5, default_retry_delay=30)
def reencrypt_community_task(community: str, target_version: int, batch_size: int = 500) -> int:
    """Re-encrypt one community to ``target_version``; idempotent and resumable. Returns rows done."""
    record = community_get(slug=community)
    if record.status == CommunityStatus.OFFBOARDED:
        return 0  # its keys are gone: nothing can or should be re-encrypted
    with schema_context(record.schema_name):
        return reencrypt_community(target_version=target_version, batch_size=batch_size).rows_done
