"""``make bench`` (research part): a page of 100 participants with PHI, secured path against a bare view.

The secured path is ``GET /api/v1/participants/?limit=100`` by a principal
investigator's bearer token through the whole middleware stack: rate limits,
community from the Host header, token and membership, the policy decision and
its record, the consent condition, decryption of every PHI field, the audit
event staged in the request's transaction and the commit. The bare path is a
DRF view with no authentication, no permission and no middleware, inside the
community's schema, running the same query and serialising the same decrypted
fields. Both are served the way a WSGI server (gunicorn) serves them: a WSGI
environ into Django's ``WSGIHandler``, the response body read out; the bare
one through a handler with no middleware whose URLconf holds only the bare
view. Both are measured in the same run, request by request in turn after a
warm-up, and the ratio of their throughputs is reported against the target
(the secured path keeps at least 70% of the bare path's). For scale, the bare
view is also called directly, with no handler at all.

Last, where the secured request's time goes: each
layer's own time (timed by wrapping the functions that do it), the statements
it sends, and the cost of a bare database and Redis round trip for scale.

Uses a scratch community (schema ``benchresearch``) in the test database,
dropped at the end. No Celery worker runs: the staged audit events are chained
in-process every few requests, outside the timed ones, so they never pile up.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import functools
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
# What production asks of a process (the suite asks for chaining on every commit).
os.environ.setdefault("AUDIT_CHAIN_SIGNAL_MS", "50")
# Keys of its own: a test run at the same time restores the suite's key file after every test.
os.environ.setdefault("TEST_LOCAL_KEY_FILE", str(Path(tempfile.gettempdir()) / "cgw-bench-research-keys.json"))

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.db import DEFAULT_DB_ALIAS, connection, connections  # noqa: E402
from django.http import HttpRequest  # noqa: E402
from django.http.response import HttpResponseBase  # noqa: E402
from django.test.client import FakePayload, RequestFactory  # noqa: E402
from django.test.utils import CaptureQueriesContext, override_settings, setup_test_environment  # noqa: E402
from django.urls import path  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_tenants.utils import schema_context  # noqa: E402
from rest_framework import serializers  # noqa: E402
from rest_framework.permissions import AllowAny  # noqa: E402
from rest_framework.renderers import JSONRenderer  # noqa: E402
from rest_framework.request import Request  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.test import APIRequestFactory  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

import gateway.ratelimit  # noqa: E402
import security.audit.middleware  # noqa: E402
import security.audit.staging  # noqa: E402
import security.identity.authentication  # noqa: E402
import security.identity.revocation  # noqa: E402
import security.identity.throttle  # noqa: E402
import services.participants.apis  # noqa: E402
import tenants.middleware  # noqa: E402
from bench.machine import stolen  # noqa: E402
from bench.scratch import drop_scratch_community  # noqa: E402
from core.redis import get_redis  # noqa: E402
from policy import permissions as policy_permissions  # noqa: E402
from policy.engine import EmbeddedEngine, get_engine  # noqa: E402
from policy.permissions import PolicyPermission  # noqa: E402
from security.audit.sequencer import audit_chain, queued_flag  # noqa: E402
from security.identity.authentication import AccessTokenAuthentication  # noqa: E402
from security.identity.signing_keys import generate_signing_key, load_keyring  # noqa: E402
from security.identity.tokens import issue_access_token  # noqa: E402
from security.models import AuthSession, User  # noqa: E402
from services.common import CreatedCursor  # noqa: E402
from services.consents.models import Consent  # noqa: E402
from services.participants.apis import ParticipantListApi  # noqa: E402
from services.participants.models import Participant  # noqa: E402
from services.participants.serializers import ParticipantSerializer  # noqa: E402
from services.studies.models import Study, StudyStatus  # noqa: E402
from tenants.lifecycle import community_create  # noqa: E402
from tests.factories import MembershipFactory, UserFactory  # noqa: E402
from vault.fields import EncryptedField  # noqa: E402

SLUG = "benchresearch"
HOST = f"{SLUG}.localhost"
PI_EMAIL = f"pi@{SLUG}.example.org"
PARTICIPANTS = 100
PHI_FIELD_COUNT = 11
SECONDS = float(os.environ.get("BENCH_RESEARCH_SECONDS", "8"))  # of requests per contender
WINDOWS = 6  # the run cut in this many stretches, to show how steady the ratio is
TARGET = 0.70
SECURED_URL = f"/api/v1/participants/?limit={PARTICIPANTS}"
LIMITS_OUT_OF_REACH = {
    "RATE_LIMIT_PER_IP": 10**9,
    "RATE_LIMIT_IP_BURST": 10**9,
    "RATE_LIMIT_PER_USER": 10**9,
    "RATE_LIMIT_USER_BURST": 10**9,
}


# --- the bare path ----------------------------------------------------------------------


def _bare_fields() -> dict[str, Any]:
    """The secured serializer's own fields (fresh copies), but the consent scopes."""
    declared = ParticipantSerializer._declared_fields
    return {name: copy.deepcopy(field) for name, field in declared.items() if name != "consent_scopes"}


# The secured serializer's fields, decrypted, without redaction (and without the consent scopes): built
# from the secured one, so the two pages serialize the same fields whatever the secured one grows.
BareParticipantSerializer: type[serializers.Serializer[Any]] = type(
    "BareParticipantSerializer", (serializers.Serializer,), _bare_fields()
)


class BareParticipantListApi(APIView):
    """The same query and fields with none of the gateway's layers: no token, no policy, no audit."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        """The first 100 participants, oldest first."""
        page = Participant.objects.order_by("created_at", "id")[:PARTICIPANTS]
        return Response({"results": BareParticipantSerializer(page, many=True).data})


# The bare handler's URLconf: the bare view at the secured view's path, and nothing else.
urlpatterns = [path("api/v1/participants/", BareParticipantListApi.as_view())]


class BareHandler(WSGIHandler):
    """Django's WSGI handler with no middleware at all, routing only to the bare view."""

    def load_middleware(self, is_async: bool = False) -> None:
        """Build the handler chain from an empty middleware list."""
        with override_settings(MIDDLEWARE=[]):
            super().load_middleware(is_async)

    def get_response(self, request: HttpRequest) -> HttpResponseBase:
        """Serve from this module's URLconf."""
        request.urlconf = __name__  # Django's per-request URLconf
        return super().get_response(request)


def wsgi_get(handler: WSGIHandler, **headers: str) -> Callable[[], tuple[int, bytes]]:
    """``GET`` the page as a WSGI server would: a fresh environ in, status and body out."""
    path, _, query = SECURED_URL.partition("?")
    template = RequestFactory()._base_environ(  # type: ignore[attr-defined]  # the factory's whole WSGI environ
        PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD="GET", **headers
    )

    def request() -> tuple[int, bytes]:
        status: list[int] = []

        def start_response(
            line: str, _headers: list[tuple[str, str]], _exc_info: Any = None
        ) -> Callable[[bytes], object]:
            status.append(int(line.split(" ", 1)[0]))
            return lambda _data: None

        response = handler({**template, "wsgi.input": FakePayload(b"")}, start_response)
        try:
            body = b"".join(response)
        finally:
            response.close()  # as a WSGI server does: request_finished, connections tidied
        return status[0], body

    return request


# --- setup and teardown -----------------------------------------------------------------


def drop_community() -> None:
    """Remove the scratch community, its schema, its key and its member (what an interrupted run left too)."""
    drop_scratch_community(SLUG)
    User.objects.filter(email=PI_EMAIL).delete()


def seed() -> str:
    """The community, 100 participants with every PHI field and a research consent each; the PI's token."""
    community = community_create(slug=SLUG, name="Research bench", domain=HOST, actor_id="operator:bench")
    investigator = UserFactory.create(email=PI_EMAIL)
    MembershipFactory.create(user=investigator, community=community, role="principal_investigator")
    signed = timezone.now() - datetime.timedelta(days=30)
    with schema_context(SLUG):
        study = Study.objects.create(
            title="Sleep and memory",
            protocol_number="BENCH-SLP-01",
            irb_approval_number="IRB-77",
            irb_approval_date=datetime.date(2026, 1, 15),
            status=StudyStatus.ACTIVE,
        )
        for number in range(PARTICIPANTS):
            participant = Participant.objects.create(study=study, **phi(number))
            Consent.objects.create(
                participant=participant, scopes=["research_use", "contact"], form_version="v3.1", signed_at=signed
            )
    # A real session: revocation asks the database about any session Redis knows nothing of.
    session = AuthSession.objects.create(user=investigator, community=community, amr=["pwd"], auth_time=timezone.now())
    return issue_access_token(
        subject=str(investigator.pk),
        community=SLUG,
        roles=["principal_investigator"],
        amr=["pwd"],
        auth_time=int(session.auth_time.timestamp()),
        session_id=str(session.pk),
    )


def phi(number: int) -> dict[str, Any]:
    """Every PHI field of one participant, realistic in length."""
    return {
        "given_name": f"Ada{number:03d}",
        "family_name": f"Lovelace-Byron {number:03d}",
        "date_of_birth": datetime.date(1950, 1, 1) + datetime.timedelta(days=97 * number),
        "sex": ("female", "male", "intersex", "unknown")[number % 4],
        "mrn": f"MRN-{number:06d}",
        "email": f"ada{number:03d}@example.org",
        "phone": f"+44 20 7946 {number:04d}",
        "street_address": f"{number + 1} St James's Square",
        "city": "Westminster",
        "state": "NY",
        "postal_code": f"{10001 + number}",
    }


# --- measuring --------------------------------------------------------------------------


@dataclass
class Contender:
    """One way of serving the page: how to make a request, and the latencies it measured."""

    label: str
    request: Callable[[], Any]
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    samples: list[float] = field(default_factory=list)  # milliseconds, in the order served

    def once(self) -> None:
        """Serve one page; time the request alone, not the set-up of its context."""
        with self.context():
            started = time.perf_counter()
            self.request()
            self.samples.append((time.perf_counter() - started) * 1000)

    def rate(self, samples: list[float] | None = None) -> float:
        """Pages per second one thread serves (of ``samples``, or of all)."""
        chosen = self.samples if samples is None else samples
        return len(chosen) / sum(chosen) * 1000

    def windows(self) -> list[list[float]]:
        """The samples in :data:`WINDOWS` consecutive stretches of the run."""
        size = max(1, len(self.samples) // WINDOWS)
        return [self.samples[start : start + size] for start in range(0, min(len(self.samples), size * WINDOWS), size)]

    def report(self, baseline: Contender | None = None) -> None:
        """One line: pages/s, p50, p99 and, against ``baseline``, the throughput ratio and its spread."""
        ordered = sorted(self.samples)
        p50, p99 = statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        ratio = ""
        if baseline is not None:
            spread = [
                self.rate(mine) / baseline.rate(theirs)
                for mine, theirs in zip(self.windows(), baseline.windows(), strict=True)
            ]
            ratio = f"  {self.rate() / baseline.rate():6.1%} of bare ({min(spread):.0%}-{max(spread):.0%})"
        print(f"{self.label:<52} {self.rate():6.1f} pages/s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms{ratio}")


def served(get: Callable[[], tuple[int, bytes]]) -> Callable[[], bytes]:
    """A page through a handler; anything but a 200 stops the run (the figures would measure a refusal)."""

    def request() -> bytes:
        status, body = get()
        if status != 200:
            raise SystemExit(f"GET {SECURED_URL} answered {status}: {body[:300]!r}")
        return body

    return request


def secured_request(token: str) -> Callable[[], bytes]:
    """The page through Django's WSGI handler and the whole middleware stack, with the PI's token."""
    return served(wsgi_get(WSGIHandler(), HTTP_HOST=HOST, HTTP_AUTHORIZATION=f"Bearer {token}"))


def bare_request() -> Callable[[], bytes]:
    """The page through a WSGI handler with no middleware, from the bare view (in the community's schema)."""
    return served(wsgi_get(BareHandler(), HTTP_HOST=HOST))


def direct_request() -> Callable[[], bytes]:
    """The bare view called directly, no handler at all (in the community's schema), rendered to JSON."""
    view = BareParticipantListApi.as_view()
    factory = APIRequestFactory()

    def request() -> bytes:
        response = view(factory.get(SECURED_URL))
        response.render()
        return bytes(response.content)

    return request


def chain_staged() -> None:
    """Chain the audit events the secured requests staged (a worker's job), outside the timed requests."""
    with schema_context(SLUG):
        audit_chain()


def check_pages(secured: Callable[[], bytes], bare: Callable[[], bytes]) -> None:
    """Both paths serve the same 100 participants with their PHI in clear."""
    page = json.loads(secured())["results"]
    with schema_context(SLUG):
        plain = json.loads(bare())["results"]
    if len(page) != PARTICIPANTS or [row["id"] for row in page] != [row["id"] for row in plain]:
        raise SystemExit("the secured and the bare path do not serve the same participants")
    if page[0]["given_name"] != "Ada000" or page[0]["consent_scopes"] != ["contact", "research_use"]:
        raise SystemExit(f"the secured page is redacted or lacks its consent scopes: {page[0]}")


def compare(contenders: list[Contender], *, seconds: float) -> None:
    """Warm up, then one request of each contender in turn (order reversed every cycle) for ``seconds`` each.

    Interleaving request by request exposes every contender to the same noise
    from the rest of the machine. The audit events the secured requests staged
    are chained every 25 cycles, outside the timed requests.
    """
    for contender in contenders:
        for _ in range(20):
            contender.once()
        contender.samples.clear()
    chain_staged()
    cycle, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds * len(contenders):
        for contender in contenders if cycle % 2 == 0 else reversed(contenders):
            contender.once()
        cycle += 1
        if cycle % 25 == 0:
            chain_staged()
    chain_staged()


# --- where the time goes ----------------------------------------------------------------


class Stopwatch:
    """Times wrapped functions; each one's own time excludes the wrapped functions it calls."""

    def __init__(self) -> None:
        self.inclusive: dict[str, float] = defaultdict(float)
        self.children: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[str] = []

    def wrap(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function``, timed under ``label``."""

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append(label)
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                self._stack.pop()
                self.inclusive[label] += spent
                self.calls[label] += 1
                if self._stack:
                    self.children[self._stack[-1]] += spent

        return timed

    def own(self, label: str) -> float:
        """Time spent in ``label`` itself, not in the wrapped functions it called."""
        return self.inclusive[label] - self.children[label]


# (owner, attribute, label): the pieces of the secured request, innermost ones included.
LAYERS: list[tuple[Any, str, str]] = [
    (gateway.ratelimit, "check", "rate limit, address (1 Redis trip)"),
    (security.identity.throttle, "check", "rate limit, user (1 Redis trip)"),
    (tenants.middleware, "community_for_host", "community from the Host header (1 Redis trip)"),
    (ParticipantListApi, "dispatch", "DRF: request, query parameters, pagination"),
    (AccessTokenAuthentication, "authenticate", "authentication: header, roles"),
    (security.identity.authentication, "verify_access_token", "token: Ed25519 signature and claims"),
    (security.identity.revocation, "is_revoked", "token: revocation (1 Redis trip; a query when Redis has no answer)"),
    (security.identity.authentication, "calling_member", "token: membership and roles (1 Redis trip)"),
    (PolicyPermission, "has_permission", "policy: input document, enforcement"),
    (policy_permissions, "break_glass_context", "policy: break-glass grant (1 Redis trip)"),
    (EmbeddedEngine, "decide", "policy: engine (embedded Rego)"),
    (policy_permissions, "decision_record", "policy: decision record's values"),
    (CreatedCursor, "paginate_queryset", "page query: participants whose consent covers the purpose"),
    (services.participants.apis, "note_participants", "audit: name the 100 participants"),
    (ParticipantSerializer, "get_fields", "serializer fields deep-copied (get_fields)"),
    (ParticipantSerializer, "to_representation", "per row: fields bound, values read, redaction"),
    (EncryptedField, "open", "decryption of 1,100 PHI fields (AES-256-GCM)"),
    (JSONRenderer, "render", "JSON rendering"),
    (security.audit.middleware, "audit_append", "audit: decision record and event (2 inserts, 1 round trip)"),
    (type(connections[DEFAULT_DB_ALIAS]), "commit", "COMMIT (decision record, audit event)"),
    (security.audit.staging, "chain_later", "audit: ask for chaining (Redis, at most 1/50 ms)"),
]


@contextlib.contextmanager
def timed_layers(stopwatch: Stopwatch) -> Iterator[None]:
    """Every layer of :data:`LAYERS` timed for the length of the block."""
    with contextlib.ExitStack() as stack:
        for owner, attribute, label in LAYERS:
            original = getattr(owner, attribute)  # plain functions all: no descriptor to keep
            stack.enter_context(mock.patch.object(owner, attribute, stopwatch.wrap(label, original)))
        yield


def breakdown(
    title: str,
    secured: Callable[[], Any],
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    *,
    requests: int = 150,
) -> None:
    """Each layer's own time per secured request, and what is left for Django and its WSGI handler."""
    stopwatch = Stopwatch()
    whole = stopwatch.wrap("request", secured)
    with context(), timed_layers(stopwatch):
        for _ in range(requests):
            whole()
    chain_staged()
    total = stopwatch.inclusive["request"] / requests * 1000
    print(f"{title} (mean of {requests}, each layer timed by a wrapper: {total:.2f} ms)")
    labels = [label for _, _, label in LAYERS]
    for label in sorted((label for label in labels if stopwatch.calls[label]), key=stopwatch.own, reverse=True):
        own = stopwatch.own(label) / requests * 1000
        calls = stopwatch.calls[label] / requests
        print(f"  {label:<62} {own:7.2f} ms  {own / total:6.1%}  ({calls:g} calls)")
    rest = stopwatch.own("request") / requests * 1000
    print(f"  {'Django handler, other middleware, URL routing (the rest)':<62} {rest:7.2f} ms  {rest / total:6.1%}")
    overhead = wrapper_overhead() * sum(stopwatch.calls.values()) / requests * 1000
    print(f"  (the timing wrappers themselves add about {overhead:.2f} ms per request, spread over the layers)")


def wrapper_overhead(calls: int = 20000) -> float:
    """Seconds one timed call adds to the function it wraps."""

    def noop() -> None:
        return None

    timed = Stopwatch().wrap("noop", noop)
    started = time.perf_counter()
    for _ in range(calls):
        timed()
    wrapped = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(calls):
        noop()
    return max(0.0, (wrapped - (time.perf_counter() - started)) / calls)


def query_counts(secured: Callable[[], Any], bare: Callable[[], Any]) -> None:
    """Queries one page makes on each path, grouped by the table they read or write."""
    with CaptureQueriesContext(connection) as secured_queries:
        secured()
    with schema_context(SLUG), CaptureQueriesContext(connection) as bare_queries:
        bare()
    chain_staged()
    for label, captured in (("secured", secured_queries), ("bare", bare_queries)):
        listed = ", ".join(_table(query["sql"]) for query in captured.captured_queries)
        print(f"{'statements per page: ' + label:<56} {len(captured):7d}   ({listed})")


def round_trips(count: int = 300) -> None:
    """What one trivial PostgreSQL and Redis round trip costs here (context for the layers' figures)."""
    redis = get_redis()
    for label, action in (
        ("round trip: PostgreSQL SELECT 1", lambda: connection.cursor().execute("SELECT 1")),
        ("round trip: Redis PING", redis.ping),
    ):
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            action()
            samples.append((time.perf_counter() - started) * 1000)
        print(f"{label:<56} p50 {statistics.median(samples):7.3f} ms")


def _table(sql: str) -> str:
    return " + ".join(_one_table(statement) for statement in sql.split(";") if statement.strip())


def _one_table(sql: str) -> str:
    words = sql.replace('"', " ").split()
    verb = words[0].upper() if words else "?"
    for keyword in ("FROM", "INTO", "UPDATE"):
        if keyword in words[1:]:
            return f"{verb} {words[words.index(keyword) + 1].split('.')[-1]}"
    return verb


# --- main -------------------------------------------------------------------------------


def run(token: str) -> None:
    """The comparison, the query counts, the breakdown."""
    secured, bare = secured_request(token), bare_request()
    check_pages(secured, bare)
    # No worker chains in the bench: say a chain task is queued, so no request enqueues one for
    # another run's worker to pick up; requests still make the Redis call they make in production.
    get_redis().set(queued_flag(SLUG), "1", ex=3600)
    in_schema = functools.partial(schema_context, SLUG)
    bare_path = Contender("bare DRF view (no token, policy, audit, middleware)", bare, in_schema)
    secured_path = Contender("secured: token, policy, consent, decryption, audit", secured)
    direct = Contender("for scale: the bare view called directly, no handler", direct_request(), in_schema)
    contenders = [bare_path, secured_path, direct]
    with stolen() as steal:
        compare(contenders, seconds=SECONDS)
    print(
        f"participant list, {PARTICIPANTS} rows x {PHI_FIELD_COUNT} PHI fields, one thread, requests interleaved, "
        f"about {SECONDS:g} s each (policy engine: {type(get_engine()).__name__}); ratio range over {WINDOWS} stretches"
        f"; {steal}"
    )
    for contender in contenders:
        contender.report(None if contender is bare_path else bare_path)
    ratio = secured_path.rate() / bare_path.rate()
    verdict = "meets" if ratio >= TARGET else "misses"
    p50s = statistics.median(bare_path.samples) / statistics.median(secured_path.samples)
    print(f"{'secured / bare throughput':<52} {ratio:6.1%}  ({verdict} the {TARGET:.0%} target; by p50 {p50s:.1%})")
    query_counts(secured, bare)
    round_trips()
    breakdown("where a secured page's time goes", secured)


def prepare_test_database() -> None:
    """The test database (kept between runs, created when missing) and a signing key for the tokens issued."""
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0, keepdb=True)
    if not load_keyring(settings.JWT_SIGNING_KEYS_DIR).keys:
        generate_signing_key(settings.JWT_SIGNING_KEYS_DIR)


def main() -> None:
    """Create the scratch community, measure, drop it."""
    prepare_test_database()
    drop_community()
    try:
        token = seed()
        with override_settings(**LIMITS_OUT_OF_REACH):  # the pipeline, not the limiter's refusals
            run(token)
    finally:
        get_redis().delete(queued_flag(SLUG))
        drop_community()


if __name__ == "__main__":
    main()
