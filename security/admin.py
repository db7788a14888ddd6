"""Admin views of people and memberships (platform host only). Secrets are never shown.

The one change the admin makes, a user's ``is_active`` or ``is_staff``, goes
through :func:`security.actions.user_flags_set`, so it is an event in the
platform's audit log (actor: the staff member's id), in the admin's own
transaction; users are created with ``create_user`` and never deleted here.
"""

from typing import Any

from django.contrib import admin
from django.forms import ModelForm
from django.http import HttpRequest

from security.actions import user_flags_set
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
    fields = (
        "email",
        "full_name",
        "organisation",
        "postal_address",
        "is_active",
        "is_staff",
        "is_superuser",
        "date_joined",
        "last_login",
    )
    # Name, organisation and address change through ``set_user_profile`` (an audited action), not here.
    readonly_fields = (
        "email",
        "full_name",
        "organisation",
        "postal_address",
        "is_superuser",
        "date_joined",
        "last_login",
    )
    inlines = (MembershipInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:  # noqa: D102 - users are made by create_user
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:  # noqa: D102 - deactivate instead
        return False

    def save_model(self, request: HttpRequest, obj: User, form: ModelForm[User], change: bool) -> None:
        """Save the flags through the action, which records each change."""
        user_flags_set(user=obj, is_active=obj.is_active, is_staff=obj.is_staff, actor_id=str(request.user.pk))


@admin.register(Membership)
class MembershipAdmin(ReadOnlyMixin, admin.ModelAdmin[Membership]):
    """Who holds which role where."""

    list_display = ("user", "community", "role", "created_at")
    list_filter = ("role", "community")
    search_fields = ("user__email",)
