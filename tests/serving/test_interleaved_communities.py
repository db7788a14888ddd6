"""Two communities' callers, interleaved at high concurrency, under gunicorn's gevent workers (``make run``'s command).

gunicorn runs serve.sh's command (``config/gunicorn.py``: four gevent workers,
monkey-patched); alpha and beta each have two principal investigators and
three participants, committed for real. Several hundred requests of all four
callers (reads of their own participants, lists, and probes of the other
community's ids) are fired 64 at a time in shuffled order. No response may
carry the other community's participants, and every audit event the server
staged for a response names the caller and the community that sent it.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from security.models import User
from tenants.models import Community
from tests.factories import ConsentFactory, MembershipFactory, UserFactory
from tests.support.commits import empty_community_tables
from tests.support.pgbouncer import pgbouncer
from tests.support.served import Served, gunicorn_serving, suite_database_url
from tests.support.tokens import token_for

SLUGS = ("alpha", "beta")
CONCURRENCY = 64
ROUNDS = 16
DB_CONNECTION_BUDGET = 24  # 4 workers x 6 greenlets: the PostgreSQL here is shared with other suites
POOLED_SERVER_CONNECTIONS = 8  # behind PgBouncer: a third of the clients the workers may open
SERVED_ENVIRONMENT = {
    "GUNICORN_DB_CONNECTION_BUDGET": str(DB_CONNECTION_BUDGET),
    "RATE_LIMIT_PER_IP": "1000000",
    "RATE_LIMIT_IP_BURST": "100000",
    "RATE_LIMIT_PER_USER": "1000000",
    "RATE_LIMIT_USER_BURST": "100000",
}


@dataclass
class Caller:
    """A principal investigator of one community and a token for it."""

    slug: str
    user_id: str
    token: str


@dataclass
class World:
    """The server, the callers, each community's participant ids and MRNs, and the server's peak DB connections."""

    served: Served
    callers: list[Caller]
    participants: dict[str, dict[str, str]] = field(default_factory=dict)
    peak_connections: list[int] = field(default_factory=list)
    backends: set[tuple[int, Any]] = field(default_factory=set)


@dataclass(frozen=True)
class Answer:
    """One response: who asked, what, and what came back."""

    caller: Caller
    path: str
    status: int
    request_id: str
    body: bytes


def _commit_community(slug: str, users: list[User]) -> tuple[list[Caller], dict[str, str]]:
    community = Community.objects.get(slug=slug)
    callers = []
    for _ in range(2):
        user = UserFactory.create()
        users.append(user)
        MembershipFactory.create(user=user, community=community, role="principal_investigator")
        callers.append(Caller(slug=slug, user_id=str(user.pk), token=token_for(user, community)))
    with schema_context(slug):
        consents = [ConsentFactory.create(participant__mrn=f"MRN-{slug.upper()}-{n}") for n in range(3)]
    return callers, {str(consent.participant_id): f"MRN-{slug.upper()}-{n}" for n, consent in enumerate(consents)}


@contextmanager
def _database(route: str) -> Iterator[dict[str, str]]:
    """The server's database settings: direct, or through PgBouncer in transaction mode (tenants/backend)."""
    if route == "direct":
        yield {}
        return
    users = (settings.DATABASE_SERVICE_ROLE,)
    with pgbouncer(str(connection.settings_dict["NAME"]), users=users, pool_size=POOLED_SERVER_CONNECTIONS) as bouncer:
        url = urlsplit(suite_database_url())
        yield {
            "DATABASE_URL": url._replace(netloc=f"{users[0]}@127.0.0.1:{bouncer.port}").geturl(),
            "DATABASE_TRANSACTION_POOLING": "true",
        }


@pytest.fixture(scope="module", params=["direct", "pgbouncer"])
def world(
    request: pytest.FixtureRequest,
    django_db_setup: None,
    django_db_blocker: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    """gunicorn as serve.sh starts it, two communities of two callers and three participants each, committed.

    The server reaches the database directly, or through PgBouncer in transaction mode with fewer server
    connections than the workers' greenlets: every transaction may land on a connection another community's used.
    """
    users: list[User] = []
    with django_db_blocker.unblock():
        try:
            callers: list[Caller] = []
            participants: dict[str, dict[str, str]] = {}
            for slug in SLUGS:
                community_callers, participants[slug] = _commit_community(slug, users)
                callers += community_callers
            with pytest.MonkeyPatch.context() as patch:
                for name, value in SERVED_ENVIRONMENT.items():  # the rate limits have tests of their own
                    patch.setenv(name, value)
                with (
                    _database(request.param) as database,
                    gunicorn_serving(tmp_path_factory.mktemp("served") / "gunicorn.log", database) as served,
                ):
                    yield World(served=served, callers=callers, participants=participants)
        finally:
            for slug in SLUGS:
                empty_community_tables(slug)
            for user in users:
                user.delete()


def _ask(served: Served, caller: Caller, path: str) -> Answer:
    address = urlsplit(served.base_url)
    client = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=60)
    try:
        client.request(
            "GET",
            path,
            headers={"Host": f"{caller.slug}.localhost", "Authorization": f"Bearer {caller.token}"},
        )
        response = client.getresponse()
        body = response.read()
        return Answer(caller, path, response.status, response.getheader("X-Request-ID") or "", body)
    finally:
        client.close()


def _plan(world: World) -> list[tuple[Caller, str]]:
    plan: list[tuple[Caller, str]] = []
    for caller in world.callers:
        other = next(slug for slug in SLUGS if slug != caller.slug)
        for _ in range(ROUNDS):
            plan += [(caller, f"/api/v1/participants/{pid}/") for pid in world.participants[caller.slug]]
            plan.append((caller, "/api/v1/participants/"))
            plan.append((caller, f"/api/v1/participants/{next(iter(world.participants[other]))}/"))
    random.Random(17).shuffle(plan)  # noqa: S311 - an order, not a secret
    return plan


def _staged_events(slug: str) -> dict[str, dict[str, Any]]:
    with schema_context(slug), connection.cursor() as cursor:
        cursor.execute(
            "SELECT entry FROM audit_pendingevent UNION ALL SELECT row_to_json(e)::text FROM audit_auditevent e"
        )
        entries = [json.loads(row[0]) for row in cursor.fetchall()]
    return {entry["request_id"]: entry for entry in entries if entry.get("request_id")}


def _server_connections() -> set[tuple[int, Any]]:
    """The server's connections open now: each backend's pid and start time."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE datname = current_database() AND usename = %s",
            [settings.DATABASE_SERVICE_ROLE],
        )
        return {(int(pid), started) for pid, started in cursor.fetchall()}


def _sample_connections(world: World, done: threading.Event) -> None:
    try:
        while not done.is_set():
            open_now = _server_connections()
            world.peak_connections.append(len(open_now))
            world.backends.update(open_now)
            done.wait(0.02)
    finally:
        connection.close()  # this thread's own connection


@pytest.fixture(scope="module")
def answers(world: World, django_db_blocker: Any) -> list[Answer]:
    """Every planned request, fired 64 at a time, while the server's database connections are counted."""
    plan = _plan(world)
    done = threading.Event()
    with django_db_blocker.unblock():
        sampler = threading.Thread(target=_sample_connections, args=(world, done))
        sampler.start()
        try:
            with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
                return list(pool.map(lambda step: _ask(world.served, *step), plan))
        finally:
            done.set()
            sampler.join()


def test_several_hundred_interleaved_requests_are_all_answered_without_a_server_error(answers: list[Answer]) -> None:
    assert len(answers) >= 300
    assert [a.status for a in answers if a.status >= 500] == []
    assert len({a.caller.user_id for a in answers}) == 4


def test_no_response_carries_the_other_communitys_participants(world: World, answers: list[Answer]) -> None:
    for answer in answers:
        other = next(slug for slug in SLUGS if slug != answer.caller.slug)
        text = answer.body.decode()
        assert f"MRN-{other.upper()}-" not in text, answer.path
        if answer.path.endswith(f"{next(iter(world.participants[other]))}/"):
            assert answer.status == 404, (answer.path, answer.status)
            assert json.loads(answer.body)["code"] == "not_found"
        else:
            assert not any(pid in text for pid in world.participants[other]), answer.path
            assert answer.status == 200, (answer.path, answer.status, text)


def test_each_read_shows_the_participant_asked_for(world: World, answers: list[Answer]) -> None:
    for answer in answers:
        own = world.participants[answer.caller.slug]
        pid = answer.path.rstrip("/").rsplit("/", 1)[-1]
        if pid in own:
            assert json.loads(answer.body)["id"] == pid
            assert own[pid] in answer.body.decode()


def _pseudonyms_shown(body: bytes) -> list[str]:
    shown = json.loads(body)
    rows = shown.get("results", [shown])
    return sorted(row["pseudonym"] for row in rows)


def test_every_audit_event_names_the_caller_and_the_community_that_sent_the_request(answers: list[Answer]) -> None:
    staged = {slug: _staged_events(slug) for slug in SLUGS}
    audited = [a for a in answers if a.status == 200]
    assert all(a.request_id for a in audited)
    for answer in audited:
        other = next(slug for slug in SLUGS if slug != answer.caller.slug)
        assert answer.request_id not in staged[other], answer.path
        event = staged[answer.caller.slug].get(answer.request_id)
        assert event is not None, answer.path
        assert event["actor_id"] == answer.caller.user_id, answer.path
        assert event["decision_id"], answer.path
        assert sorted(event["participant_pseudonyms"]) == _pseudonyms_shown(answer.body), answer.path
    decision_ids = [staged[a.caller.slug][a.request_id]["decision_id"] for a in audited]
    assert len(set(decision_ids)) == len(decision_ids)


def test_the_servers_database_connections_stay_within_the_budget_workers_times_greenlets(
    world: World, answers: list[Answer]
) -> None:
    assert answers
    assert max(world.peak_connections) > 4  # greenlets of one worker hold connections at once
    assert max(world.peak_connections) <= DB_CONNECTION_BUDGET


def test_the_workers_reuse_their_pooled_connections_instead_of_one_per_request(
    world: World, answers: list[Answer]
) -> None:
    # Each worker's pool (config/gunicorn.py: DATABASE_POOL_MAX_SIZE) keeps what it opened: a few hundred
    # requests are served by no more connections than the budget, where one per request opened hundreds.
    assert len(answers) > 10 * DB_CONNECTION_BUDGET
    assert 4 < len(world.backends) <= DB_CONNECTION_BUDGET
