"""factory_boy factories for the public-schema models."""

from __future__ import annotations

import factory

from security.models import Membership, User
from security.roles import Role

DEFAULT_PASSWORD = "correct horse battery staple 42"


class UserFactory(factory.django.DjangoModelFactory[User]):
    """A user with the default password."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda number: f"person{number}@example.org")
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @factory.post_generation
    def _save(self, create: bool, extracted: object, **kwargs: object) -> None:  # noqa: FBT001
        if create:
            self.save()


class MembershipFactory(factory.django.DjangoModelFactory[Membership]):
    """A membership; pass ``user`` and ``community``."""

    class Meta:
        model = Membership

    role = Role.RESEARCHER
