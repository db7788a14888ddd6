"""What a grant opens: the break-glass answer every request's policy input carries, and the reads it lets through.

The answer is kept in Redis per community, so a new grant is honoured at once
and a revoked one is forgotten at once;
the policy then lets the grant's holder, and only them, read the participant it
names in an emergency, until it expires.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from security.breakglass.actions import grant_revoke
from security.breakglass.models import BreakGlassGrant
from security.breakglass.selectors import break_glass_context
from services.participants.models import Participant
from tenants.models import Community
from tests.factories import BreakGlassGrantFactory, ParticipantFactory
from tests.support.audit import chained_events
from tests.support.breakglass import EMERGENCY, grant_in, probe
from tests.support.clients import MemberClient

USER = uuid.UUID("00000000-0000-0000-0000-0000000000b1")

probe_routes = pytest.mark.urls("tests.policy.probe_urls")


def grant(schema: str, *, minutes: int, created_minutes_ago: int = 0) -> BreakGlassGrant:
    now = datetime.now(tz=UTC)
    with schema_context(schema):
        made = BreakGlassGrantFactory.create(
            user_id=USER, scope="study", scope_id=str(uuid.uuid4()), expires_at=now + timedelta(minutes=minutes)
        )
        BreakGlassGrant.objects.filter(pk=made.pk).update(created_at=now - timedelta(minutes=created_minutes_ago))
        return made


def context(schema: str, *, now: int | None = None) -> dict[str, Any] | None:
    with schema_context(schema):
        return break_glass_context(subject_id=str(USER), community=schema, now=now or int(time.time()))


def grant_queries(schema: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        context(schema)
    return sum("breakglass_breakglassgrant" in query["sql"] for query in captured.captured_queries)


# --- the answer, kept in Redis ---------------------------------------------------------


def test_no_grant_is_asked_of_the_database_once_then_kept(alpha: Community) -> None:
    assert grant_queries("alpha") == 1
    assert grant_queries("alpha") == 0
    assert context("alpha") is None


def test_a_grant_opened_after_none_was_kept_is_honoured_at_once(alpha: Community, beta: Community) -> None:
    assert context("alpha") is None

    opened = grant("alpha", minutes=60)

    found = context("alpha")
    assert found is not None
    assert found["grant_id"] == str(opened.pk)
    assert context("beta") is None  # another community's answer is its own


def test_a_kept_grant_that_expired_is_looked_up_again(alpha: Community) -> None:
    lasting = grant("alpha", minutes=60, created_minutes_ago=10)
    brief = grant("alpha", minutes=5)  # the newest, so the one the policy is told about
    found = context("alpha")
    assert found is not None
    assert found["grant_id"] == str(brief.pk)

    later = int(time.time()) + 6 * 60
    found = context("alpha", now=later)

    assert found is not None
    assert found["grant_id"] == str(lasting.pk)  # not "none": the older grant outlasts the kept one
    assert context("alpha", now=int(time.time()) + 61 * 60) is None


def test_a_revoked_grant_is_no_answer_from_the_moment_it_is_revoked(alpha: Community) -> None:
    opened = grant("alpha", minutes=60)
    found = context("alpha")
    assert found is not None  # the answer is now kept
    assert found["grant_id"] == str(opened.pk)

    with schema_context("alpha"):
        grant_revoke(grant_id=str(opened.pk), revoker=str(USER), revoker_roles=["coordinator"])

    assert context("alpha") is None


def test_an_older_grant_still_active_is_the_answer_once_the_newer_one_is_revoked(alpha: Community) -> None:
    lasting = grant("alpha", minutes=60, created_minutes_ago=10)
    newest = grant("alpha", minutes=60)
    with schema_context("alpha"):
        grant_revoke(grant_id=str(newest.pk), revoker=str(USER), revoker_roles=["coordinator"])

    found = context("alpha")

    assert found is not None
    assert found["grant_id"] == str(lasting.pk)


# --- what the policy does with a grant ---------------------------------------------------


@probe_routes
def test_a_grant_lets_its_holder_read_the_participant_in_an_emergency_and_flags_it(
    signed_in: MemberClient, participant: Participant
) -> None:
    client, user = signed_in("coordinator")
    refused = client.get(probe(participant), HTTP_X_PURPOSE_OF_USE=EMERGENCY)
    assert refused.status_code == 403
    assert refused.json()["code"] == "consent_not_covering_purpose"

    grant_in("alpha", user, str(participant.pk))
    allowed = client.get(probe(participant), HTTP_X_PURPOSE_OF_USE=EMERGENCY)

    assert allowed.status_code == 200
    assert allowed.json()["reasons"] == ["break_glass"]
    assert allowed.json()["audit"] == "heightened"
    with schema_context("alpha"):
        event = chained_events().get(decision_id=allowed.json()["decision_id"])
    assert event.break_glass is True
    assert event.purpose == "emergency"
    assert event.actor_id == str(user.pk)


@probe_routes
def test_a_grant_opens_only_the_participant_it_names(
    alpha: Community, signed_in: MemberClient, participant: Participant
) -> None:
    client, user = signed_in("coordinator")
    other = ParticipantFactory.create(community=alpha)
    grant_in("alpha", user, str(participant.pk))

    response = client.get(probe(other), HTTP_X_PURPOSE_OF_USE=EMERGENCY)

    assert response.status_code == 403
    assert response.json()["code"] == "consent_not_covering_purpose"
    assert "break_glass" not in response.json()["reasons"]


@probe_routes
def test_someone_elses_grant_opens_nothing(signed_in: MemberClient, participant: Participant) -> None:
    _, holder = signed_in("coordinator")
    grant_in("alpha", holder, str(participant.pk))
    colleague, _ = signed_in("coordinator")

    response = colleague.get(probe(participant), HTTP_X_PURPOSE_OF_USE=EMERGENCY)

    assert response.status_code == 403
    assert response.json()["code"] == "consent_not_covering_purpose"


@probe_routes
def test_an_expired_grant_opens_nothing(signed_in: MemberClient, participant: Participant) -> None:
    client, user = signed_in("coordinator")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        grant_in("alpha", user, str(participant.pk), expires_at=start + timedelta(minutes=1))
        assert client.get(probe(participant), HTTP_X_PURPOSE_OF_USE=EMERGENCY).status_code == 200

    with time_machine.travel(start + timedelta(minutes=1, seconds=1), tick=False):
        response = client.get(probe(participant), HTTP_X_PURPOSE_OF_USE=EMERGENCY)

    assert response.status_code == 403
    assert response.json()["code"] == "consent_not_covering_purpose"
    with schema_context("alpha"):
        assert not chained_events().filter(decision_id=response.json()["decision_id"], break_glass=True).exists()
