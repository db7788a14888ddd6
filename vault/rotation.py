"""Re-encrypting a community under its newest key version, in batches, resumably.

Old versions keep decrypting throughout; only once no row is left on an old
version does the provider's minimum decryption version move up (and the old
wrapped keys go). A rerun resumes from the last committed batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from tenants.schema import tenant_connection
from vault.crypto import Ciphertext
from vault.fields import BlindIndexField, EncryptedField, encrypted_fields
from vault.keys import community_keys_retire_below
from vault.models import RotationJob, RotationStatus

Progress = Callable[[RotationJob], None]


def encrypted_models() -> list[type[models.Model]]:
    """Every installed model with an encrypted or blind index field."""
    return [model for model in apps.get_models() if encrypted_fields(model)]


def _stale(model: type[models.Model], version: int) -> Q:
    """Rows with any value sealed or indexed under an older version."""
    condition = Q()
    for field in encrypted_fields(model):
        if isinstance(field, EncryptedField):
            current = Q(**{f"{field.name}__startswith": Ciphertext(f"v1.{version}.")})
        elif isinstance(field, BlindIndexField):
            current = Q(**{f"{field.name}__startswith": f"{version}:"})
        else:  # pragma: no cover - encrypted_fields returns only these two kinds
            continue
        condition |= Q(**{f"{field.name}__isnull": False}) & ~current
    return condition


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

    Runs in the community's schema (the caller switches to it).
    """
    job, _ = RotationJob.objects.get_or_create(target_version=target_version)
    if job.status == RotationStatus.DONE:
        return job
    targets = encrypted_models()
    job.rows_total = sum(model._default_manager.filter(_stale(model, target_version)).count() for model in targets)
    job.rows_done = 0
    job.save(update_fields=["rows_total", "rows_done"])
    for model in targets:
        _reencrypt_model(model, job, batch_size, progress)
    # Rows written meanwhile were sealed with the newest key already; anything older is swept here.
    for model in targets:
        while leftovers := list(model._default_manager.filter(_stale(model, target_version))[:batch_size]):
            with transaction.atomic():
                _reseal(leftovers)
    community_keys_retire_below(tenant_connection().schema_name, target_version)
    job.status, job.finished_at = RotationStatus.DONE, timezone.now()
    job.save(update_fields=["status", "finished_at"])
    if progress:
        progress(job)
    return job


def _reencrypt_model(model: type[models.Model], job: RotationJob, batch_size: int, progress: Progress | None) -> None:
    label = model._meta.label
    while True:
        rows = model._default_manager.filter(_stale(model, job.target_version)).order_by("pk")
        if label in job.checkpoints:
            rows = rows.filter(pk__gt=job.checkpoints[label])
        batch = list(rows[:batch_size])
        if not batch:
            return
        with transaction.atomic():
            _reseal(batch)
            job.checkpoints[label] = str(batch[-1].pk)
            job.rows_done += len(batch)
            job.save(update_fields=["checkpoints", "rows_done"])
        if progress:
            progress(job)
