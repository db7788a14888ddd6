"""Admin views of people and memberships (platform host only). Secrets are never shown."""

from django.contrib import admin

from security.models import Membership, User


class MembershipInline(admin.TabularInline[Membership, User]):
    """A user's roles across communities."""

    model = Membership
    extra = 0
    fields = ("community", "role", "created_at")
    readonly_fields = ("created_at",)


@admin.register(User)
class UserAdmin(admin.ModelAdmin[User]):
    """Users: activate, deactivate, grant platform staff. Passwords are set with create_user only."""

    list_display = ("email", "is_active", "is_staff", "date_joined")
    list_filter = ("is_active", "is_staff")
    search_fields = ("email",)
    fields = ("email", "is_active", "is_staff", "is_superuser", "date_joined", "last_login")
    readonly_fields = ("date_joined", "last_login")
    inlines = (MembershipInline,)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin[Membership]):
    """Who holds which role where."""

    list_display = ("user", "community", "role", "created_at")
    list_filter = ("role", "community")
    search_fields = ("user__email",)
    raw_id_fields = ("user",)
