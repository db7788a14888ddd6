"""The break-glass rules every path obeys, called as a shell command or task would call them (no request)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django_tenants.utils import schema_context

from core.errors import Conflict, Forbidden, NotFound
from security.breakglass.actions import grant_review, grant_revoke
from security.breakglass.models import BreakGlassGrant
from security.models import User
from services.participants.models import Participant
from tenants.models import Community
from tests.support.audit import chained_events
from tests.support.breakglass import ended_grant_in, grant_in


def test_the_holder_is_refused_review_of_their_own_grant_and_the_refusal_is_on_record(
    alpha: Community, member: Callable[..., User], participant: Participant
) -> None:
    holder = member(alpha, "coordinator")
    own = ended_grant_in("alpha", holder, str(participant.pk))

    with schema_context("alpha"):
        with pytest.raises(Forbidden) as refused:
            grant_review(grant_id=str(own.pk), reviewer=str(holder.pk), comment="Mine, and fine")
        [event] = chained_events().filter(action="break_glass.review")
        assert BreakGlassGrant.objects.get(pk=own.pk).reviewed_at is None

    assert refused.value.code == "self_review"
    assert (event.outcome, event.actor_id, event.reasons) == ("deny", str(holder.pk), ["self_review"])


def test_an_active_grant_is_refused_review(
    alpha: Community, member: Callable[..., User], participant: Participant
) -> None:
    active = grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))

    with schema_context("alpha"), pytest.raises(Conflict) as refused:
        grant_review(grant_id=str(active.pk), reviewer=str(member(alpha, "compliance_officer").pk), comment="Early")

    assert refused.value.code == "grant_still_active"


def test_a_revocation_is_recorded_by_the_action_itself(
    alpha: Community, member: Callable[..., User], participant: Participant
) -> None:
    officer = member(alpha, "compliance_officer")
    active = grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))

    with schema_context("alpha"):
        revoked = grant_revoke(grant_id=str(active.pk), revoker=str(officer.pk), revoker_roles=["compliance_officer"])
        [event] = chained_events().filter(action="break_glass.revoke")

    assert revoked.revoked_by == officer.pk
    assert (event.outcome, event.actor_id, event.resource_id) == ("allow", str(officer.pk), str(active.pk))
    assert event.actor_roles == ["compliance_officer"]


def test_someone_who_neither_holds_nor_oversees_a_grant_finds_no_grant_to_revoke(
    alpha: Community, member: Callable[..., User], participant: Participant
) -> None:
    active = grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
    colleague = member(alpha, "coordinator")

    with schema_context("alpha"), pytest.raises(NotFound):
        grant_revoke(grant_id=str(active.pk), revoker=str(colleague.pk), revoker_roles=["coordinator"])
