"""Django app configuration for the audit log (a tenant app: each community's events in its schema)."""

from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Audit events and their hash chain."""

    name = "security.audit"
    label = "audit"
    default_auto_field = "django.db.models.BigAutoField"
