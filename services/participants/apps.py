"""Django app configuration for participants."""

from django.apps import AppConfig


class ParticipantsConfig(AppConfig):
    """Participants: a tenant app, migrated into every community's schema."""

    name = "services.participants"
    label = "participants"
    default_auto_field = "django.db.models.BigAutoField"
