"""Django app configuration for communities."""

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    """Communities live in the public schema; each owns a PostgreSQL schema."""

    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"
