"""Django app configuration for communities."""

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    """Communities live in the public schema; each owns a PostgreSQL schema."""

    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Forget cached host answers when a community or domain changes; grant the service's role after migrations."""
        from django.db.models.signals import post_delete, post_save  # noqa: PLC0415  # apps are loading
        from django_tenants.signals import schema_migrated  # noqa: PLC0415

        from tenants.hosts import forget_hosts  # noqa: PLC0415
        from tenants.models import Community, Domain  # noqa: PLC0415
        from tenants.roles import grant_service_privileges  # noqa: PLC0415

        schema_migrated.connect(grant_service_privileges, dispatch_uid="grant-service-privileges")

        for model in (Community, Domain):
            post_save.connect(forget_hosts, sender=model, dispatch_uid=f"forget-hosts-save-{model.__name__}")
            post_delete.connect(forget_hosts, sender=model, dispatch_uid=f"forget-hosts-delete-{model.__name__}")
