"""Admin views of communities (public host only); lifecycle changes go through the commands."""

from django.contrib import admin

from tenants.models import Community, Domain


class DomainInline(admin.TabularInline[Domain, Community]):
    """Domains of a community, read-only."""

    model = Domain
    extra = 0
    can_delete = False
    readonly_fields = ("domain", "is_primary")


@admin.register(Community)
class CommunityAdmin(admin.ModelAdmin[Community]):
    """Read-only list of communities: create, suspend and offboard with the management commands."""

    list_display = ("slug", "name", "status", "created_at")
    list_filter = ("status",)
    readonly_fields = ("slug", "schema_name", "name", "status", "created_at", "updated_at", "status_changed_at")
    inlines = (DomainInline,)

    def has_add_permission(self, request: object) -> bool:  # noqa: D102 - creation needs a schema
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:  # noqa: D102
        return False
