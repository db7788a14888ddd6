"""Django app configuration for de-identified exports."""

from django.apps import AppConfig


class ExportsConfig(AppConfig):
    """De-identified (Safe Harbor) study exports: a tenant app, migrated into every community's schema."""

    name = "services.exports"
    label = "exports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the system checks of this app."""
        from services.exports import checks  # noqa: F401, PLC0415 - importing registers the checks
