"""Public-schema identity models: users, memberships, refresh tokens, second factors."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower, Now

from security.roles import Role


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively: store and look them up in lowercase."""
    return email.strip().lower()


class UserManager(BaseUserManager["User"]):
    """Create users by email; the password is always hashed (Argon2)."""

    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        """Create an ordinary user."""
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        """Create a platform administrator (Django admin on the public host)."""
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person, global to the platform; what they may do depends on their memberships."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=254, unique=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(auto_now_add=True)
    # Who the person is, as an accounting of disclosures names a recipient (45 CFR 164.528(b)(2)(ii)).
    full_name = models.CharField(max_length=200, blank=True, db_default="")
    organisation = models.CharField(max_length=200, blank=True, db_default="")
    postal_address = models.CharField(max_length=500, blank=True, db_default="")

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects = UserManager()

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.CheckConstraint(condition=models.Q(email=Lower("email")), name="user_email_is_lowercase"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def mfa_enabled(self) -> bool:
        """Whether a confirmed second factor protects this account."""
        return TotpDevice.objects.filter(user=self, confirmed_at__isnull=False).exists()


class Membership(models.Model):
    """A user's role in one community. A user may hold several roles there, one row each."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    community = models.ForeignKey("tenants.Community", on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=32, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["user", "community", "role"], name="membership_unique_role"),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="membership_role_is_known"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.community_id}:{self.role}"


class AffiliationKind(models.TextChoices):
    """Whose person a member is, in one community: the covered entity's workforce, or another organisation's."""

    WORKFORCE = "workforce", "The covered entity's own workforce"
    EXTERNAL = "external", "Another organisation of the community"


class Affiliation(models.Model):
    """From ``valid_from`` on, the user's affiliation in the community (until a later row says otherwise).

    A change adds a row and never rewrites one, so the accounting of disclosures
    decides use or disclosure by the affiliation in force at the access time.
    No row at that time means no record of workforce: the access is a disclosure.
    ``valid_from`` is the database's time of the insert (``db_default``), never the
    caller's; the database refuses an UPDATE (``audit_refuse_change``, migration
    0005), and the service's role may only SELECT and INSERT (:mod:`tenants.roles`).
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="affiliations")
    community = models.ForeignKey("tenants.Community", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=AffiliationKind.choices)
    valid_from = models.DateTimeField(db_default=Now())
    recorded_by = models.CharField(max_length=64)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["valid_from", "id"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["community", "user", "valid_from"], name="affiliation_in_force"),
        ]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.CheckConstraint(
                condition=models.Q(kind__in=AffiliationKind.values), name="affiliation_kind_is_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.community_id}:{self.kind} from {self.valid_from}"


class AuthSession(models.Model):
    """One sign-in of a user to a community: the family its refresh tokens belong to.

    Refresh, logout and reuse detection lock this row, so a revocation can never
    miss a refresh token issued at the same moment.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="auth_sessions")
    community = models.ForeignKey("tenants.Community", on_delete=models.CASCADE, related_name="+")
    amr = models.JSONField(default=list)
    auth_time = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return str(self.id)


class RefreshToken(models.Model):
    """One refresh token of a session. Only its SHA-256 is stored.

    Every use rotates it: the used token is marked and a child is issued in the
    same session. Presenting a used token again revokes the session.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(AuthSession, on_delete=models.CASCADE, related_name="refresh_tokens")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return str(self.id)


class TotpDevice(models.Model):
    """A user's TOTP authenticator. The shared secret is stored sealed (AES-GCM)."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="totp_device")
    sealed_secret = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # The last 30-second step accepted: a code is never accepted twice.
    last_used_step = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"totp:{self.user_id}"


class RecoveryCode(models.Model):
    """A one-time recovery code, stored as a keyed hash."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"recovery:{self.user_id}"
