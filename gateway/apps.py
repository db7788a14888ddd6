"""Django app configuration for the gateway package."""

from django.apps import AppConfig


class GatewayConfig(AppConfig):
    """The request pipeline (no models)."""

    name = "gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the system checks of this app."""
        from gateway import checks  # noqa: F401, PLC0415 - importing registers the checks
