"""Django app configuration for break-glass grants (a tenant app)."""

from django.apps import AppConfig


class BreakGlassConfig(AppConfig):
    """Emergency access grants and their review."""

    name = "security.breakglass"
    label = "breakglass"
    default_auto_field = "django.db.models.BigAutoField"
