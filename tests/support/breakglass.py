"""Break-glass in tests: the reason a holder gives, the purpose of use that asks for a grant, grants made directly."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from django_tenants.utils import schema_context

from security.breakglass.models import BreakGlassGrant
from security.models import User
from services.participants.models import Participant
from tests.factories import BreakGlassGrantFactory

BREAK_GLASS = "/api/v1/break-glass/"
REASON = "Unconscious in the emergency department; allergy history needed now"
EMERGENCY = "emergency"  # X-Purpose-Of-Use


def grant_in(schema: str, user: User, scope_id: str, **fields: Any) -> BreakGlassGrant:
    """An open grant in ``schema`` for ``user`` over participant ``scope_id``, for 30 minutes, with :data:`REASON`."""
    with schema_context(schema):
        return BreakGlassGrantFactory.create(
            **{
                "user_id": user.pk,
                "scope_id": scope_id,
                "reason": REASON,
                "expires_at": timezone.now() + timedelta(minutes=30),
                **fields,
            }
        )


def probe(participant: Participant) -> str:
    """The test-only route that answers with the policy's decision on reading ``participant``."""
    return f"/api/v1/probe/participants/{participant.pk}"
