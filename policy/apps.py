"""Django app configuration for policy (a tenant app: decision records live in each community's schema)."""

from django.apps import AppConfig


class PolicyConfig(AppConfig):
    """Policy engines, the permission that asks them, and decision records."""

    name = "policy"
    default_auto_field = "django.db.models.BigAutoField"
