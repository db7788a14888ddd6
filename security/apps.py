"""Django app configuration for security."""

from django.apps import AppConfig


class SecurityConfig(AppConfig):
    """Identity lives in the public schema: a person is one user across communities."""

    name = "security"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the system checks of this app."""
        from security import checks  # noqa: F401, PLC0415 - importing registers the checks
