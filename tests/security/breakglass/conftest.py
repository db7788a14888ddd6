"""Fixtures of the break-glass tests: a participant of alpha, and members of alpha signed in."""

from __future__ import annotations

import pytest

from services.participants.models import Participant
from tenants.models import Community
from tests.factories import ParticipantFactory
from tests.support.clients import MemberClient


@pytest.fixture
def participant(alpha: Community) -> Participant:
    """A participant of alpha (no consent: only a grant opens their record in an emergency)."""
    return ParticipantFactory.create(community=alpha)


@pytest.fixture
def signed_in(member_client: MemberClient) -> MemberClient:
    """A new member of alpha signed in with a password, or with password and TOTP (``second_factor=True``)."""
    return member_client
