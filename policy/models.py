"""Decision records, in each community's schema: what was asked (PHI-free input) and what was decided."""

from __future__ import annotations

from typing import ClassVar

from django.db import models


class DecisionRecord(models.Model):
    """One policy decision. The input holds ids, roles, scopes and request metadata, never PHI."""

    decision_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    revision = models.CharField(max_length=200)
    input_digest = models.CharField(max_length=80)
    input = models.JSONField()
    action = models.CharField(max_length=64, db_index=True)
    allow = models.BooleanField()
    reasons = models.JSONField(default=list)
    obligations = models.JSONField(default=dict)

    class Meta:
        ordering: ClassVar[list[str]] = ["created_at", "id"]

    def __str__(self) -> str:
        return self.decision_id
