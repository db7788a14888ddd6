"""Writes of identity data: create users, add memberships."""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from core.errors import BadRequest, Conflict, NotFound
from security.errors import IdentityErrorCode
from security.models import Membership, User, normalize_email
from security.roles import Role
from tenants.selectors import community_get


def user_create(*, email: str, password: str) -> User:
    """Create a user who signs in with ``email`` and ``password`` (Argon2-hashed).

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
            return User.objects.create_user(email=email, password=password)
    except IntegrityError:
        raise Conflict("a user with this email already exists", code=IdentityErrorCode.USER_EXISTS) from None


def membership_add(*, email: str, community_slug: str, role: str) -> Membership:
    """Give the user with ``email`` the ``role`` in a community.

    Raises:
        BadRequest: unknown role.
        NotFound: unknown user or community.
        Conflict: the user already holds that role there.
    """
    if role not in Role.values:
        raise BadRequest(f"role must be one of: {', '.join(Role.values)}", code=IdentityErrorCode.INVALID_ROLE)
    community = community_get(slug=community_slug)
    user = User.objects.filter(email=normalize_email(email)).first()
    if user is None:
        raise NotFound("no user with this email", code=IdentityErrorCode.USER_NOT_FOUND)
    try:
        with transaction.atomic():
            return Membership.objects.create(user=user, community=community, role=role)
    except IntegrityError:
        raise Conflict(
            f"the user already has role {role} in {community.slug}", code=IdentityErrorCode.MEMBERSHIP_EXISTS
        ) from None
