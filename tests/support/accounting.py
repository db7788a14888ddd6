"""Factories of the accounting workflow's records, for tests."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from factory.declarations import LazyFunction, SubFactory

from services.accounting.models import AccountingRequest
from tests.factories import ParticipantFactory, TenantFactory


class AccountingRequestFactory(TenantFactory[AccountingRequest]):
    """An open request received now, due in 60 days."""

    class Meta:
        model = AccountingRequest

    participant = SubFactory(ParticipantFactory)
    received_at = LazyFunction(timezone.now)
    due_at = LazyFunction(lambda: timezone.now() + timedelta(days=60))
    requester = "letter"
    opened_by = "operator:test"
