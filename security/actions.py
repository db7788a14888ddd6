"""Writes of identity data: users, memberships, second factors and signing keys, each with its audit event.

Every function here is one privileged change and writes its own audit event,
inside the transaction that makes the change (``actor_id`` is who did it: a
user's id, or ``operator:<name>`` for a shell command). Users, second factors
and signing keys are platform-wide, so their events go to the platform log; a
membership is access to one community, so its events go to that community's
log (the rule is in :mod:`security.audit.events`).
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django_tenants.utils import schema_context

from core.errors import BadRequest, Conflict, NotFound
from security.audit.events import platform_record
from security.audit.staging import record
from security.errors import IdentityErrorCode
from security.identity.signing_keys import SigningKey, generate_signing_key, prune_signing_keys, reset_keyring_cache
from security.models import Membership, RecoveryCode, TotpDevice, User, normalize_email
from security.roles import Role
from tenants.models import Community
from tenants.selectors import community_get
from vault.models import RotationJob
from vault.rotation import rotation_begin


def user_create(
    *,
    email: str,
    password: str,
    actor_id: str,
    full_name: str = "",
    organisation: str = "",
    postal_address: str = "",
) -> User:
    """Create a user who signs in with ``email`` and ``password`` (Argon2-hashed); event ``user.create``.

    The name, organisation and postal address are how an accounting of
    disclosures names the user as a recipient.

    Raises:
        BadRequest: the email is malformed or the password too weak.
        Conflict: a user with that email exists.
    """
    email = normalize_email(email)
    try:
        validate_email(email)
    except ValidationError:
        raise BadRequest("email is not a valid address", code=IdentityErrorCode.INVALID_EMAIL) from None
    try:
        validate_password(password, User(email=email))
    except ValidationError as error:
        raise BadRequest("password: " + " ".join(error.messages), code=IdentityErrorCode.WEAK_PASSWORD) from None
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                email=email,
                password=password,
                full_name=full_name,
                organisation=organisation,
                postal_address=postal_address,
            )
            platform_record(action="user.create", actor_id=actor_id, resource_type="user", resource_id=str(user.pk))
    except IntegrityError:
        raise Conflict("a user with this email already exists", code=IdentityErrorCode.USER_EXISTS) from None
    return user


def user_get(*, email: str, for_update: bool = False) -> User:
    """The user with ``email`` (locked when ``for_update``, inside the caller's transaction).

    Raises:
        NotFound: no user with this email.
    """
    users = User.objects.select_for_update() if for_update else User.objects.all()
    user = users.filter(email=normalize_email(email)).first()
    if user is None:
        raise NotFound("no user with this email", code=IdentityErrorCode.USER_NOT_FOUND)
    return user


def user_flags_set(*, user: User, actor_id: str, is_active: bool | None = None, is_staff: bool | None = None) -> User:
    """Set whether ``user`` may sign in and whether they are platform staff; one event per flag that changed.

    ``user.deactivate``, ``user.reactivate``, ``user.staff_grant`` or
    ``user.staff_revoke`` in the platform log; a flag already as asked changes
    nothing and records nothing.
    """
    with transaction.atomic():
        current = User.objects.select_for_update().get(pk=user.pk)
        changes: list[tuple[str, str]] = []
        if is_active is not None and current.is_active != is_active:
            changes.append(("is_active", "user.reactivate" if is_active else "user.deactivate"))
            current.is_active = is_active
        if is_staff is not None and current.is_staff != is_staff:
            changes.append(("is_staff", "user.staff_grant" if is_staff else "user.staff_revoke"))
            current.is_staff = is_staff
        if changes:
            current.save(update_fields=[field for field, _ in changes])
        for _, action in changes:
            platform_record(action=action, actor_id=actor_id, resource_type="user", resource_id=str(current.pk))
    user.is_active, user.is_staff = current.is_active, current.is_staff
    return current


def user_deactivate(*, email: str, actor_id: str) -> User:
    """Stop a user signing in anywhere (their memberships stay); event ``user.deactivate``."""
    return user_flags_set(user=user_get(email=email), is_active=False, actor_id=actor_id)


def user_reactivate(*, email: str, actor_id: str) -> User:
    """Let a deactivated user sign in again; event ``user.reactivate``."""
    return user_flags_set(user=user_get(email=email), is_active=True, actor_id=actor_id)


def mfa_reset(*, email: str, actor_id: str) -> User:
    """Remove a user's second factor and recovery codes (a lost device); event ``user.mfa_reset``.

    Raises:
        NotFound: no such user, or the user has no second factor to reset.
    """
    with transaction.atomic():
        user = user_get(email=email, for_update=True)
        removed, _ = TotpDevice.objects.filter(user=user).delete()
        if not removed:
            raise NotFound("the user has no second factor", code=IdentityErrorCode.MFA_NOT_ENABLED)
        RecoveryCode.objects.filter(user=user).delete()
        platform_record(action="user.mfa_reset", actor_id=actor_id, resource_type="user", resource_id=str(user.pk))
    return user


def _membership_event(community: Community, *, action: str, actor_id: str, membership: Membership) -> None:
    """Record a membership change in its community's log, in the caller's transaction."""
    with schema_context(community.schema_name):
        record(
            action=action,
            actor_id=actor_id,
            resource_type="membership",
            resource_id=f"{membership.user_id}:{membership.role}",
        )


def _role_checked(role: str) -> str:
    if role not in Role.values:
        raise BadRequest(f"role must be one of: {', '.join(Role.values)}", code=IdentityErrorCode.INVALID_ROLE)
    return role


def membership_add(*, email: str, community_slug: str, role: str, actor_id: str) -> Membership:
    """Give the user with ``email`` the ``role`` in a community; event ``membership.grant`` in its log.

    Raises:
        BadRequest: unknown role.
        NotFound: unknown user or community.
        Conflict: the user already holds that role there.
    """
    _role_checked(role)
    community = community_get(slug=community_slug)
    user = user_get(email=email)
    try:
        with transaction.atomic():
            membership = Membership.objects.create(user=user, community=community, role=role)
            _membership_event(community, action="membership.grant", actor_id=actor_id, membership=membership)
    except IntegrityError:
        raise Conflict(
            f"the user already has role {role} in {community.slug}", code=IdentityErrorCode.MEMBERSHIP_EXISTS
        ) from None
    return membership


def _membership_locked(*, user: User, community: Community, role: str) -> Membership:
    membership = Membership.objects.select_for_update().filter(user=user, community=community, role=role).first()
    if membership is None:
        raise NotFound(f"the user has no role {role} in {community.slug}", code=IdentityErrorCode.MEMBERSHIP_NOT_FOUND)
    return membership


def membership_remove(*, email: str, community_slug: str, role: str, actor_id: str) -> None:
    """Take ``role`` in a community away from the user with ``email``; event ``membership.remove`` in its log.

    Raises:
        BadRequest: unknown role.
        NotFound: unknown user or community, or the user does not hold that role there.
    """
    _role_checked(role)
    community = community_get(slug=community_slug)
    user = user_get(email=email)
    with transaction.atomic():
        membership = _membership_locked(user=user, community=community, role=role)
        membership.delete()
        membership.user_id = user.pk  # kept for the event's resource id
        _membership_event(community, action="membership.remove", actor_id=actor_id, membership=membership)


def membership_role_change(
    *, email: str, community_slug: str, from_role: str, to_role: str, actor_id: str
) -> Membership:
    """Change one of the user's roles in a community into another; event ``membership.role_change`` in its log.

    Raises:
        BadRequest: unknown role.
        NotFound: unknown user or community, or the user does not hold ``from_role`` there.
        Conflict: the user already holds ``to_role`` there.
    """
    _role_checked(from_role)
    _role_checked(to_role)
    community = community_get(slug=community_slug)
    user = user_get(email=email)
    try:
        with transaction.atomic():
            membership = _membership_locked(user=user, community=community, role=from_role)
            membership.role = to_role
            membership.save(update_fields=["role"])
            with schema_context(community.schema_name):
                record(
                    action="membership.role_change",
                    actor_id=actor_id,
                    resource_type="membership",
                    resource_id=f"{user.pk}:{to_role}",
                    reasons=[f"from:{from_role}"],
                )
    except IntegrityError:
        raise Conflict(
            f"the user already has role {to_role} in {community.slug}", code=IdentityErrorCode.MEMBERSHIP_EXISTS
        ) from None
    return membership


def signing_key_rotate(*, directory: Path, actor_id: str) -> SigningKey:
    """Add a new access-token signing key (it signs from now on); event ``signing_key.rotate`` in the platform log.

    The key file and the event stand or fall together: when the event cannot
    be written (or its transaction not committed), the new key file is removed
    again and the previous key keeps signing.
    """
    key: SigningKey | None = None
    try:
        with transaction.atomic():
            key = generate_signing_key(directory)
            platform_record(
                action="signing_key.rotate", actor_id=actor_id, resource_type="signing_key", resource_id=key.kid
            )
    except BaseException:
        if key is not None:
            (directory / f"{key.created_at}-{key.kid}.pem").unlink(missing_ok=True)
            reset_keyring_cache()
        raise
    return key


def signing_keys_prune(*, directory: Path, actor_id: str) -> list[str]:
    """Delete the signing keys that can verify nothing any more; one ``signing_key.prune`` event when any went."""
    with transaction.atomic():
        removed = prune_signing_keys(directory)
        if removed:
            platform_record(
                action="signing_key.prune",
                actor_id=actor_id,
                resource_type="signing_key",
                resource_id=removed[0],
                reasons=removed,
            )
    return removed


def community_key_rotate(*, community_slug: str, actor_id: str) -> tuple[RotationJob, bool]:
    """Give a community's key a new version (or resume the unfinished rotation); return the job and whether it is new.

    A new version is recorded as ``community.key_rotate`` in the community's
    log, in the transaction that records the rotation job (the provider's key
    is rotated inside it too; were the transaction lost, the next rotation
    makes another version, which is harmless). A resumed rotation changes no
    key and records nothing. Re-encryption follows (:mod:`vault.rotation`).
    """
    community = community_get(slug=community_slug)
    with schema_context(community.schema_name), transaction.atomic():
        job, started = rotation_begin(community.slug)
        if started:
            record(
                action="community.key_rotate",
                actor_id=actor_id,
                resource_type="community_key",
                resource_id=f"{community.slug}:{job.target_version}",
            )
    return job, started
