"""Re-encrypting a community under its newest key version, in batches, resumably.

Old versions keep decrypting throughout; only once no row is left on an old
version do the old wrapped keys go (committed), and then the provider deletes
the old versions. A rerun resumes from the last committed batch, or retires
again when the provider failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Q
from django.utils import timezone

from core.schema import tenant_connection
from vault.crypto import Ciphertext
from vault.fields import BlindIndexField, EncryptedField, encrypted_fields
from vault.keys import community_keys_forget_below, community_keys_retire_below, community_keys_rotate
from vault.models import DataKey, RotationJob, RotationStatus

Progress = Callable[[RotationJob], None]


def encrypted_models() -> list[type[models.Model]]:
    """Every installed model with an encrypted or blind index field."""
    return [model for model in apps.get_models() if encrypted_fields(model)]


def _old_versions(target: int) -> list[int]:
    """Key versions below ``target`` that still have data keys (rows may still use them)."""
    return sorted(set(DataKey.objects.filter(version__lt=target).values_list("version", flat=True)))


def _stale(model: type[models.Model], old_versions: list[int]) -> Q:
    """Rows with any value sealed or indexed under one of ``old_versions`` (never a newer one)."""
    condition = Q(pk__in=[])
    for field in encrypted_fields(model):
        for old in old_versions:
            if isinstance(field, EncryptedField):
                condition |= Q(**{f"{field.name}__startswith": Ciphertext(f"v1.{old}.")})
            elif isinstance(field, BlindIndexField):
                condition |= Q(**{f"{field.name}__startswith": f"{old}:"})
    return condition


def _count_stale(targets: list[type[models.Model]], old_versions: list[int]) -> int:
    return sum(model._default_manager.filter(_stale(model, old_versions)).count() for model in targets)


def _reseal(rows: list[Any]) -> None:
    """Open every encrypted value and save it again: sealed with the newest key, re-indexed."""
    for row in rows:
        names = []
        for field in encrypted_fields(type(row)):
            if isinstance(field, EncryptedField):
                setattr(row, field.attname, getattr(row, field.attname))  # opened: saving seals anew
            names.append(field.attname)
        row.save(update_fields=names)


def reencrypt_community(*, target_version: int, batch_size: int = 500, progress: Progress | None = None) -> RotationJob:
    """Bring every row of the current community to ``target_version``, then retire older versions.

    Runs in the community's schema (the caller switches to it). Older versions
    are retired only once a final count finds no row left on them, after a
    settling pause that lets writes begun before the rotation commit.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    job, _ = RotationJob.objects.get_or_create(target_version=target_version)
    if job.status == RotationStatus.DONE:
        return job
    targets, old_versions = encrypted_models(), _old_versions(target_version)
    job.rows_total = job.rows_done + _count_stale(targets, old_versions)
    job.save(update_fields=["rows_total"])
    for model in targets:
        _reencrypt_model(model, job, old_versions, batch_size, progress)
    time.sleep(settings.ROTATION_SETTLE_SECONDS)
    for model in targets:
        _sweep(model, old_versions, batch_size)
    community = tenant_connection().schema_name
    with transaction.atomic():
        _lock_rotation()
        if _count_stale(targets, old_versions):
            raise RuntimeError("rows are still on an old key version: run rotate_keys again to finish")
        community_keys_forget_below(community, target_version)
    # Committed first: should the provider fail half way (Vault's config done, its trim not), no row is
    # left for a search or a write to unwrap with a refused version, and a rerun (which finds no old
    # version) retires again; both of the provider's steps may be repeated.
    community_keys_retire_below(community, target_version)
    job.status, job.finished_at = RotationStatus.DONE, timezone.now()
    job.save(update_fields=["status", "finished_at"])
    if progress:
        progress(job)
    return job


def _lock_rotation() -> None:
    """One rotation step at a time per community (a transaction-scoped advisory lock)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('vault-rotation:' || current_schema()))")


def rotation_start(community: str) -> RotationJob:
    """Resume the unfinished rotation, or rotate the provider key and record the new job, under one lock."""
    return rotation_begin(community)[0]


def rotation_begin(community: str) -> tuple[RotationJob, bool]:
    """:func:`rotation_start`, saying whether a new key version was made (``True``) or a rotation resumed.

    Inside a caller's transaction the lock is held until that transaction
    ends, so the caller can record the new version in the same transaction.
    """
    with transaction.atomic():
        _lock_rotation()
        unfinished = RotationJob.objects.filter(status=RotationStatus.RUNNING).order_by("-target_version").first()
        if unfinished is not None:
            return unfinished, False
        return RotationJob.objects.create(target_version=community_keys_rotate(community)), True


def _sweep(model: type[models.Model], old_versions: list[int], batch_size: int) -> None:
    """Re-seal whatever is still on an old version (rows written while the rotation ran)."""
    while True:
        with transaction.atomic():
            rows = list(model._default_manager.filter(_stale(model, old_versions)).select_for_update()[:batch_size])
            if not rows:
                return
            _reseal(rows)


def _reencrypt_model(
    model: type[models.Model], job: RotationJob, old_versions: list[int], batch_size: int, progress: Progress | None
) -> None:
    label = model._meta.label
    while True:
        with transaction.atomic():
            rows = model._default_manager.filter(_stale(model, old_versions)).order_by("pk")
            if label in job.checkpoints:
                rows = rows.filter(pk__gt=job.checkpoints[label])
            # Locked and read inside the transaction: a concurrent edit is never overwritten.
            batch = list(rows.select_for_update()[:batch_size])
            if not batch:
                return
            _reseal(batch)
            job.checkpoints[label] = str(batch[-1].pk)
            job.rows_done += len(batch)
            job.save(update_fields=["checkpoints", "rows_done"])
        if progress:
            progress(job)
