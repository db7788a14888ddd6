"""Django app configuration for studies."""

from django.apps import AppConfig


class StudiesConfig(AppConfig):
    """Studies: a tenant app, migrated into every community's schema."""

    name = "services.studies"
    label = "studies"
    default_auto_field = "django.db.models.BigAutoField"
