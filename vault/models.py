"""Wrapped data keys and rotation progress, in each community's schema (never plaintext keys)."""

from __future__ import annotations

from typing import ClassVar

from django.db import models


class KeyKind(models.TextChoices):
    """What a data key is for."""

    DATA = "data", "Field encryption"
    INDEX = "index", "Blind index"


class DataKey(models.Model):
    """A data key as the provider wrapped it; ``version`` is the provider key version that wrapped it."""

    kind = models.CharField(max_length=8, choices=KeyKind.choices)
    version = models.PositiveIntegerField()
    wrapped = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["kind", "version"], name="datakey_one_per_kind_and_version"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:v{self.version}"


class RotationStatus(models.TextChoices):
    """Where a rotation stands."""

    RUNNING = "running", "Running"
    DONE = "done", "Done"


class RotationJob(models.Model):
    """Progress of re-encrypting a community to one key version; a rerun resumes where it stopped."""

    target_version = models.PositiveIntegerField(unique=True)
    status = models.CharField(max_length=8, choices=RotationStatus.choices, default=RotationStatus.RUNNING)
    # {"app.Model": last primary key done, as a string}
    checkpoints = models.JSONField(default=dict)
    rows_done = models.PositiveBigIntegerField(default=0)
    rows_total = models.PositiveBigIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rotation to v{self.target_version}: {self.status}"
