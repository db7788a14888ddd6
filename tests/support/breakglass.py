"""Break-glass in tests: the reason a holder gives, the purpose of use that asks for a grant, grants made directly.

A grant is reviewed only once it has ended: :func:`ended_grant_in` makes one that expired a minute ago.
"""

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


def ended_grant_in(schema: str, user: User, scope_id: str) -> BreakGlassGrant:
    """A grant like :func:`grant_in`'s, opened 31 minutes ago and expired a minute ago: ready for review."""
    now = timezone.now()
    grant = grant_in(schema, user, scope_id, expires_at=now - timedelta(minutes=1))
    with schema_context(schema):
        BreakGlassGrant.objects.filter(pk=grant.pk).update(created_at=now - timedelta(minutes=31))
        return BreakGlassGrant.objects.get(pk=grant.pk)


def revoke_route(grant: BreakGlassGrant) -> str:
    """The route that ends ``grant`` early."""
    return f"{BREAK_GLASS}{grant.pk}/revoke/"


def review_route(grant: BreakGlassGrant) -> str:
    """The route that reviews ``grant`` once it has ended."""
    return f"{BREAK_GLASS}{grant.pk}/review/"
