"""Django app configuration for the gateway package."""

from django.apps import AppConfig


class GatewayConfig(AppConfig):
    """The request pipeline (no models)."""

    name = "gateway"
    default_auto_field = "django.db.models.BigAutoField"
