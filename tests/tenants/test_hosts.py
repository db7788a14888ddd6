"""The host-to-community cache: answers from Redis, forgotten on every change, the database behind it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from redis.exceptions import ConnectionError as RedisConnectionError

from core.redis import get_redis
from tenants.hosts import community_for_host
from tenants.lifecycle import community_suspend
from tenants.models import Community, Domain
from tests.support.clients import ALPHA_HOST, BETA_HOST

GENERATION = "communities:generation:hosts"
ANSWERS = "{communities:generation:hosts}:answers"  # fields: <generation>:<host>


def community_queries(action: Callable[[], Any]) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        action()
    return [query["sql"] for query in captured.captured_queries if "tenants_" in query["sql"]]


def test_a_host_asked_again_is_answered_without_the_database(alpha: Community, beta: Community) -> None:
    assert community_queries(lambda: community_for_host(ALPHA_HOST))  # the first time asks

    assert community_queries(lambda: community_for_host(ALPHA_HOST)) == []
    cached = community_for_host(ALPHA_HOST)
    assert cached is not None
    assert (cached.pk, cached.schema_name, cached.slug, cached.status) == (alpha.pk, "alpha", "alpha", "active")
    other = community_for_host(BETA_HOST.upper())
    assert other is not None
    assert other.pk == beta.pk


def test_the_cache_holds_signed_json_not_pickles(alpha: Community) -> None:
    community_for_host(ALPHA_HOST)

    generation = int(get_redis().get(GENERATION) or 0)
    stored = str(get_redis().hget(ANSWERS, f"{generation}:{ALPHA_HOST}"))

    mac, _, body = stored.partition(".")
    stored_at, _, answer = body.partition(".")
    assert len(mac) == 64
    assert stored_at.isdigit()  # milliseconds, under the HMAC with the answer
    assert json.loads(answer)["slug"] == "alpha"


def test_an_answer_written_to_redis_by_someone_else_is_not_believed(alpha: Community, beta: Community) -> None:
    community_for_host(ALPHA_HOST)
    generation = int(get_redis().get(GENERATION) or 0)
    alpha_field, beta_field = f"{generation}:{ALPHA_HOST}", f"{generation}:{BETA_HOST}"
    mac, _, body = str(get_redis().hget(ANSWERS, alpha_field)).partition(".")
    stored_at, _, answer = body.partition(".")
    forged = json.loads(answer) | {"id": beta.pk, "schema_name": "beta", "slug": "beta"}
    get_redis().hset(ANSWERS, alpha_field, f"{mac}.{stored_at}.{json.dumps(forged)}")  # alpha's host pointed at beta
    get_redis().hset(ANSWERS, beta_field, f"{mac}.{body}")  # alpha's own answer, moved to beta's host

    assert community_queries(lambda: community_for_host(ALPHA_HOST))  # not believed: asked again
    found, other = community_for_host(ALPHA_HOST), community_for_host(BETA_HOST)
    assert found is not None
    assert other is not None
    assert (found.slug, other.slug) == ("alpha", "beta")


def test_a_host_nobody_serves_is_not_cached(db: None) -> None:
    assert community_for_host("nobody.localhost") is None

    assert community_queries(lambda: community_for_host("nobody.localhost"))


def test_a_suspension_is_seen_at_once_by_a_host_already_cached(alpha: Community) -> None:
    community_for_host(ALPHA_HOST)

    community_suspend(slug="alpha", actor_id="operator:test")

    found = community_for_host(ALPHA_HOST)
    assert found is not None
    assert found.status == "suspended"


def test_a_removed_domain_stops_resolving_at_once(alpha: Community) -> None:
    Domain.objects.create(domain="alpha-mirror.localhost", tenant=alpha, is_primary=False)
    assert community_for_host("alpha-mirror.localhost") is not None

    Domain.objects.filter(domain="alpha-mirror.localhost").delete()  # a queryset delete sends the signal too

    assert community_for_host("alpha-mirror.localhost") is None


def test_the_commit_of_a_change_moves_the_generation_on_again(
    alpha: Community, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        community_suspend(slug="alpha", actor_id="operator:test")
        during = int(get_redis().get(GENERATION) or 0)
        assert during >= 1  # at once: nothing cached before the change is read again

    assert callbacks
    # At the commit: an answer cached from the database while the change was uncommitted is dropped.
    assert int(get_redis().get(GENERATION) or 0) > during


@pytest.mark.parametrize("method", ["evalsha", "pipeline"])
def test_without_redis_the_database_answers(alpha: Community, method: str) -> None:
    with mock.patch.object(type(get_redis()), method, side_effect=RedisConnectionError("down")):
        found = community_for_host(ALPHA_HOST)

    assert found is not None
    assert found.pk == alpha.pk
