"""A row the restore test writes on either side of the moment it restores to."""

from __future__ import annotations

from django.db import models


class RecoveryProbe(models.Model):
    """One write of the point-in-time check: ``label`` names the run and the side (before or after)."""

    label = models.CharField(max_length=80, unique=True)
    written_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.label
