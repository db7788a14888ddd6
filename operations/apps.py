"""The operations app: its one model marks points in time for the restore test."""

from __future__ import annotations

from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """Backups and their restore test (public schema only)."""

    name = "operations"
    default_auto_field = "django.db.models.BigAutoField"
