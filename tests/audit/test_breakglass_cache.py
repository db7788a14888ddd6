"""The break-glass answer every request needs, kept in Redis: a new grant is honoured at once, per community."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from security.breakglass.models import BreakGlassGrant
from security.breakglass.selectors import break_glass_context
from tenants.models import Community

USER = uuid.UUID("00000000-0000-0000-0000-0000000000b1")


def grant(schema: str, *, minutes: int, created_minutes_ago: int = 0) -> BreakGlassGrant:
    now = datetime.now(tz=UTC)
    with schema_context(schema):
        made = BreakGlassGrant.objects.create(
            user_id=USER,
            scope="study",
            scope_id=str(uuid.uuid4()),
            reason="cardiac arrest on the ward",
            expires_at=now + timedelta(minutes=minutes),
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
