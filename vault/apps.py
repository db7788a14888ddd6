"""Django app configuration for vault (a tenant app: wrapped data keys live in each community's schema)."""

from django.apps import AppConfig


class VaultConfig(AppConfig):
    """Key providers, encrypted fields, rotation."""

    name = "vault"
    default_auto_field = "django.db.models.BigAutoField"
