"""Audit events: who did what to which resource, under which decision; never PHI."""

from __future__ import annotations

from typing import ClassVar

from django.db import models


class Outcome(models.TextChoices):
    """Whether the policy allowed the access."""

    ALLOW = "allow", "Allowed"
    DENY = "deny", "Denied"


class AuditEvent(models.Model):
    """One event. ``entry_hash`` = SHA-256(previous hash ‖ canonical JSON of the event)."""

    sequence = models.BigIntegerField(unique=True)
    occurred_at = models.DateTimeField()
    actor_id = models.CharField(max_length=64, blank=True)
    actor_roles = models.JSONField(default=list)
    action = models.CharField(max_length=64)
    resource_type = models.CharField(max_length=64, blank=True)
    resource_id = models.CharField(max_length=64, blank=True)
    participant_pseudonym = models.CharField(max_length=32, blank=True)
    purpose = models.CharField(max_length=32, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    decision_id = models.CharField(max_length=64, blank=True)
    policy_revision = models.CharField(max_length=200, blank=True)
    reasons = models.JSONField(default=list)
    request_id = models.CharField(max_length=64, blank=True)
    client_ip = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=256, blank=True)
    break_glass = models.BooleanField(default=False)
    previous_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["sequence"]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action}"
