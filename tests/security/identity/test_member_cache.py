"""Who the caller is in a community, kept in Redis: every change to a membership or a user is seen at once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.redis import get_redis
from security.models import Membership, User
from security.selectors import active_member, calling_member
from tenants.models import Community


def membership_queries(user: User, community: Community) -> int:
    with CaptureQueriesContext(connection) as captured:
        calling_member(user_id=user.pk, community=community)
    return sum("security_membership" in query["sql"] for query in captured.captured_queries)


def test_a_member_asked_again_is_answered_without_the_database(alpha: Community, member: Callable[..., User]) -> None:
    user = member(alpha, "coordinator")
    assert membership_queries(user, alpha) == 1

    assert membership_queries(user, alpha) == 0
    found = calling_member(user_id=str(user.pk), community=alpha)
    assert found is not None
    kept, roles = found
    assert (kept.pk, kept.email, kept.is_active, roles) == (user.pk, user.email, True, ["coordinator"])
    assert isinstance(kept.pk, uuid.UUID)


def test_membership_of_one_community_says_nothing_of_another(
    alpha: Community, beta: Community, member: Callable[..., User]
) -> None:
    user = member(alpha, "owner")
    assert calling_member(user_id=user.pk, community=alpha) is not None

    assert calling_member(user_id=user.pk, community=beta) is None
    assert calling_member(user_id=user.pk, community=beta) is None  # the kept "no", still per community


def test_a_deactivated_user_is_refused_at_once(alpha: Community, member: Callable[..., User]) -> None:
    user = member(alpha)
    assert calling_member(user_id=user.pk, community=alpha) is not None

    user.is_active = False
    user.save()

    assert calling_member(user_id=user.pk, community=alpha) is None


def test_a_removed_membership_and_a_new_role_are_seen_at_once(alpha: Community, member: Callable[..., User]) -> None:
    user = member(alpha, "researcher")
    assert calling_member(user_id=user.pk, community=alpha) is not None

    Membership.objects.create(user=user, community=alpha, role="coordinator")
    found = calling_member(user_id=user.pk, community=alpha)
    assert found is not None
    assert found[1] == ["coordinator", "researcher"]

    Membership.objects.filter(user=user, community=alpha).delete()
    assert calling_member(user_id=user.pk, community=alpha) is None


def test_a_kept_refusal_ends_when_the_user_joins(alpha: Community, member: Callable[..., User]) -> None:
    stranger = member(alpha)
    Membership.objects.filter(user=stranger).delete()
    assert calling_member(user_id=stranger.pk, community=alpha) is None

    Membership.objects.create(user=stranger, community=alpha, role="auditor")

    found = calling_member(user_id=stranger.pk, community=alpha)
    assert found is not None
    assert found[1] == ["auditor"]


def test_readers_off_the_request_path_ask_the_database_every_time(
    alpha: Community, member: Callable[..., User]
) -> None:
    user = member(alpha, "compliance_officer")
    assert calling_member(user_id=user.pk, community=alpha) is not None

    user.memberships.update(role="researcher")  # no signal: the kept answer is not forgotten

    found = active_member(user_id=user.pk, community=alpha)
    assert found is not None
    assert found[1] == ["researcher"]  # a task re-checking a requester sees the change at once


def test_roles_written_into_redis_by_someone_else_are_not_believed(
    alpha: Community, member: Callable[..., User]
) -> None:
    user = member(alpha, "researcher")
    calling_member(user_id=user.pk, community=alpha)
    redis = get_redis()
    key = "{members:generation:all}:answers"
    field = f"{int(redis.get('members:generation:all') or 0)}:{alpha.pk}:{user.pk}"
    mac, _, body = str(redis.hget(key, field)).partition(".")
    stored_at, _, answer = body.partition(".")
    redis.hset(key, field, f"{mac}.{stored_at}.{json.dumps(json.loads(answer) | {'roles': ['owner']})}")

    found = calling_member(user_id=user.pk, community=alpha)

    assert found is not None
    assert found[1] == ["researcher"]
