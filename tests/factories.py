"""factory_boy factories for the public-schema models."""

from __future__ import annotations

from factory import declarations
from factory.django import DjangoModelFactory, Password

from security.models import Membership, User
from security.roles import Role

DEFAULT_PASSWORD = "correct horse battery staple 42"


class UserFactory(DjangoModelFactory[User]):
    """A user with the default password."""

    class Meta:
        model = User

    email = declarations.Sequence(lambda number: f"person{number}@example.org")
    password = Password(DEFAULT_PASSWORD)


class MembershipFactory(DjangoModelFactory[Membership]):
    """A membership; pass ``user`` and ``community``."""

    class Meta:
        model = Membership

    role = Role.RESEARCHER
