"""Django app configuration for observations."""

from django.apps import AppConfig


class ObservationsConfig(AppConfig):
    """Observations: a tenant app, migrated into every community's schema."""

    name = "services.observations"
    label = "observations"
    default_auto_field = "django.db.models.BigAutoField"
