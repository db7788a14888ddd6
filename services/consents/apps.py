"""Django app configuration for consents."""

from django.apps import AppConfig


class ConsentsConfig(AppConfig):
    """Consents: a tenant app, migrated into every community's schema."""

    name = "services.consents"
    label = "consents"
    default_auto_field = "django.db.models.BigAutoField"
