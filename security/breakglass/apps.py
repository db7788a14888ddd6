"""Django app configuration for break-glass grants (a tenant app)."""

from django.apps import AppConfig


class BreakGlassConfig(AppConfig):
    """Emergency access grants and their review."""

    name = "security.breakglass"
    label = "breakglass"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Forget kept answers whenever a grant changes (cache upkeep, not a business rule)."""
        from django.db.models.signals import post_delete, post_save  # noqa: PLC0415  # apps are loading

        from security.breakglass.models import BreakGlassGrant  # noqa: PLC0415
        from security.breakglass.selectors import forget_grants  # noqa: PLC0415

        post_save.connect(forget_grants, sender=BreakGlassGrant, dispatch_uid="forget-grants-save")
        post_delete.connect(forget_grants, sender=BreakGlassGrant, dispatch_uid="forget-grants-delete")
