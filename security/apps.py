"""Django app configuration for security."""

from django.apps import AppConfig


class SecurityConfig(AppConfig):
    """Identity lives in the public schema: a person is one user across communities."""

    name = "security"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the system checks; forget kept callers whenever a membership or a user changes."""
        from django.db.models.signals import post_delete, post_save  # noqa: PLC0415  # apps are loading

        from security import checks  # noqa: F401, PLC0415 - importing registers the checks
        from security.models import Membership, User  # noqa: PLC0415
        from security.selectors import forget_members  # noqa: PLC0415

        for model in (Membership, User):
            post_save.connect(forget_members, sender=model, dispatch_uid=f"forget-members-save-{model.__name__}")
            post_delete.connect(forget_members, sender=model, dispatch_uid=f"forget-members-delete-{model.__name__}")
