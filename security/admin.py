"""Admin views of people and memberships (platform host only). Secrets are never shown."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from security.admin_login import SecondFactorAdminLoginForm
from security.models import Membership, User

# Staff sign in with email, password and a second factor, under the API's lockout.
admin.site.login_form = SecondFactorAdminLoginForm
admin.site.login_template = "security/admin_login.html"


class ReadOnlyMixin:
    """Shown, never changed here: roles are granted with the ``add_member`` command (``membership_add``)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:  # noqa: D102
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:  # noqa: D102
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:  # noqa: D102
        return False


class MembershipInline(ReadOnlyMixin, admin.TabularInline[Membership, User]):
    """A user's roles across communities."""

    model = Membership
    extra = 0
    fields = ("community", "role", "created_at")
    readonly_fields = ("community", "role", "created_at")


@admin.register(User)
class UserAdmin(admin.ModelAdmin[User]):
    """Users: activate, deactivate, grant platform staff. Passwords are set with create_user only."""

    list_display = ("email", "is_active", "is_staff", "date_joined")
    list_filter = ("is_active", "is_staff")
    search_fields = ("email",)
    fields = ("email", "is_active", "is_staff", "is_superuser", "date_joined", "last_login")
    readonly_fields = ("is_superuser", "date_joined", "last_login")
    inlines = (MembershipInline,)


@admin.register(Membership)
class MembershipAdmin(ReadOnlyMixin, admin.ModelAdmin[Membership]):
    """Who holds which role where."""

    list_display = ("user", "community", "role", "created_at")
    list_filter = ("role", "community")
    search_fields = ("user__email",)
