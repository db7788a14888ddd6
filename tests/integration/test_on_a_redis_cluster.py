"""The service on a real Redis Cluster (three primaries of the machine's redis-server), REDIS_CLUSTER=true.

tests/architecture/test_redis_cluster.py shows that every multi-key unit the
code sends keeps its keys in one slot; here the same code runs against a
cluster, which refuses (CROSSSLOT, MOVED without a cluster client, NOSCRIPT on
a node that never saw a script) whatever would not work there: requests of two
communities, a sign-out, a lockout, the refusal bound, the generation caches,
and readiness when a node is lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from core.errors import TooManyRequests
from core.generations import GenerationCache
from core.redis import get_redis
from security.audit.refusals import refusal_admitted
from security.identity.throttle import reserve_login_attempt
from security.models import User
from tenants.models import Community
from tests.support.clients import ALPHA_HOST, BETA_HOST, MemberClient, bearer
from tests.support.redis_cluster import Cluster, redis_cluster
from tests.support.tokens import token_for

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with redis_cluster() as running:
        yield running


@pytest.fixture
def on_cluster(cluster: Cluster, settings: Any) -> Cluster:
    """The service's Redis is the cluster for this test (emptied first)."""
    cluster.flush()
    settings.REDIS_URL = cluster.url
    settings.REDIS_CLUSTER = True
    return cluster


def nodes_holding_keys(cluster: Cluster) -> int:
    return sum(1 for index in range(len(cluster.ports)) if cluster.node(index).dbsize())


def test_members_of_two_communities_are_served_and_kept_apart_on_the_cluster(
    on_cluster: Cluster,
    alpha: Community,
    beta: Community,
    member: Callable[..., User],
    client_for: Callable[[str], APIClient],
) -> None:
    ada, grace = member(alpha, "researcher"), member(beta, "researcher")
    ada_token, grace_token = token_for(ada, alpha), token_for(grace, beta)

    mine = [bearer(client_for(ALPHA_HOST), ada_token).get("/api/v1/me"),
            bearer(client_for(BETA_HOST), grace_token).get("/api/v1/me")]  # fmt: skip
    crossing = bearer(client_for(BETA_HOST), ada_token).get("/api/v1/me")

    assert [response.status_code for response in mine] == [200, 200]
    assert [response.json()["email"] for response in mine] == [ada.email, grace.email]
    assert crossing.status_code == 401
    assert crossing.json()["code"] == "invalid_token"
    assert nodes_holding_keys(on_cluster) >= 2  # the requests' keys went to the nodes of their slots


def test_a_signed_out_token_is_refused_on_the_cluster(on_cluster: Cluster, member_client: MemberClient) -> None:
    client, _ = member_client("researcher")
    assert client.get("/api/v1/me").status_code == 200

    assert client.post("/api/v1/auth/logout", {}, format="json").status_code in {200, 204}
    refused = client.get("/api/v1/me")

    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"


def test_failed_sign_ins_lock_the_account_out_on_the_cluster(on_cluster: Cluster) -> None:
    with override_settings(LOGIN_MAX_FAILURES_PER_ACCOUNT=2, LOGIN_MAX_FAILURES_PER_IP=100):
        for _ in range(2):
            reserve_login_attempt(email="ada@example.org", ip="203.0.113.10").failed()
        with pytest.raises(TooManyRequests) as refused:
            reserve_login_attempt(email="ada@example.org", ip="203.0.113.10")
        other = reserve_login_attempt(email="grace@example.org", ip="203.0.113.10")

    assert int(refused.value.headers["Retry-After"]) > 0
    assert (other.account_count, other.ip_count) == (1, 4)  # the refused attempt counted for the address too


def test_the_refusal_bound_writes_the_first_and_carries_the_count_on_the_cluster(on_cluster: Cluster) -> None:
    seen = [refusal_admitted(code="rate_limited", host=ALPHA_HOST, client="203.0.113.10") for _ in range(3)]
    for key in get_redis().scan_iter("{audit:refusal}:first:*"):  # the window ends
        get_redis().delete(key)

    assert seen == [0, -1, -1]
    assert refusal_admitted(code="rate_limited", host=ALPHA_HOST, client="203.0.113.10") == 2


def test_a_generation_cache_hits_and_forgets_on_the_cluster(on_cluster: Cluster) -> None:
    cache = GenerationCache("breakglass")
    for scope in ("alpha", "beta", "gamma", "delta"):  # scopes whose keys land on different nodes
        cache.put(scope, cache.get(scope, "a-user"), "a-user", {"grant": scope})

    hits = [cache.get(scope, "a-user").value for scope in ("alpha", "beta", "gamma", "delta")]
    cache._next_generation("beta")

    assert hits == [{"grant": "alpha"}, {"grant": "beta"}, {"grant": "gamma"}, {"grant": "delta"}]
    assert not cache.get("beta", "a-user").hit
    assert cache.get("alpha", "a-user").hit
    assert nodes_holding_keys(on_cluster) >= 2


def test_readiness_fails_when_a_node_of_the_cluster_is_lost(
    settings: Any, alpha: Community, beta: Community, client_for: Callable[[str], APIClient]
) -> None:
    with redis_cluster() as own:
        settings.REDIS_URL, settings.REDIS_CLUSTER = own.url, True
        before = client_for("localhost").get("/health/ready")
        own.stop(2)
        deadline = time.monotonic() + 15
        while own.state(0) == "ok" and time.monotonic() < deadline:  # the others mark it failed after the timeout
            time.sleep(0.2)
        after = client_for("localhost").get("/health/ready")

    assert before.status_code == 200
    assert before.json()["checks"]["redis"]["status"] == "up"
    assert after.status_code == 503
    assert after.json()["checks"]["redis"]["status"] == "down"


def test_without_the_cluster_client_the_cluster_refuses_the_service(
    on_cluster: Cluster, settings: Any, member_client: MemberClient
) -> None:
    """The fixture is no plain Redis in disguise: a plain client is sent away (MOVED), and the request fails closed."""
    settings.REDIS_CLUSTER = False
    client, _ = member_client("researcher")

    refused = client.get("/api/v1/me")

    assert refused.status_code == 503
    assert refused.headers["Content-Type"] == "application/problem+json"
