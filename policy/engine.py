"""Policy engines behind one protocol: embedded Rego (regopy) and an OPA sidecar over HTTP.

``POLICY_ENGINE`` chooses (``embedded`` for development and tests, ``opa`` in
production). Both return the same :class:`~policy.decision.Decision`; both
fail closed: a policy that does not compile, an unreachable or slow OPA, an
undefined or malformed decision, all raise :class:`~policy.errors.PolicyUnavailable`.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import regopy
import requests
from django.conf import settings
from opa_client.opa import OpaClient

from core.canonical import canonical_json
from core.lru import BoundedLRU
from core.metrics import record_policy_memo
from policy.decision import Decision, digest_input, parse_decision
from policy.errors import PolicyUnavailable
from policy.source import PolicySource

logger = logging.getLogger(__name__)

DECISION_QUERY = "data.gateway.authz.decision"
# Readiness asks for a real decision: a policy that loads but cannot decide is not ready.
READINESS_PROBE: dict[str, Any] = {
    "subject": {
        "id": "readiness",
        "community": "readiness",
        "roles": ["auditor"],
        "amr": ["pwd"],
        "mfa_age_seconds": None,
    },
    "community": {"slug": "readiness", "status": "active"},
    "action": "self.read",
    "resource": {"type": "self", "id": "readiness", "attributes": {}},
    "purpose": "operations",
    "context": {"now": 0, "request_id": None, "client_ip": None, "break_glass": None},
}
# At most this many OPA calls wait at once per process; each is bounded by the deadline.
_OPA_CALLS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="opa")
DECISION_PACKAGE = "gateway/authz"
DECISION_RULE = "decision"


class PolicyEngine(Protocol):
    """Decides one input document; says whether it can decide at all."""

    @property
    def revision(self) -> str:
        """The revision of the policy this engine evaluates."""
        ...

    def decide(self, document: dict[str, Any]) -> Decision:
        """Evaluate the decision for ``document`` (raises PolicyUnavailable, never allows by default)."""
        ...

    def check_ready(self) -> None:
        """Raise PolicyUnavailable unless decisions can be made."""
        ...


def compile_policy(source: PolicySource, query: str = DECISION_QUERY) -> regopy.Bundle:
    """Compile the modules and data into a bundle for ``query``; raise PolicyUnavailable on any error."""
    interpreter = regopy.Interpreter()
    try:
        for name, text in source.modules.items():
            interpreter.add_module(name, text)
        interpreter.add_data_json(source.data_json)
        bundle = interpreter.build(f"x = {query}")
    except regopy.RegoError as error:
        raise PolicyUnavailable(f"the policy does not compile: {str(error).strip()[:500]}") from error
    if not bundle.ok():
        raise PolicyUnavailable("the policy does not compile")
    return bundle


# JSON numbers the engines agree on: integers within ±2^53 (I-JSON, RFC 7493 §2.2). Beyond, regorus
# 0.13 refuses an integer past i64 ("not an i64"), rego-cpp's native input wraps one past int64,
# and OPA keeps it exact: the embedded engine refuses such a document instead of guessing.
SAFE_INTEGER = 2**53
_INT64 = 2**63


def _numbers(value: Any) -> Iterator[int | float]:
    """Every number in a JSON-like value (booleans are not numbers)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield value


def unsafe_number(document: Any) -> bool:
    """Whether ``document`` carries an integer beyond ±2^53 or a number that is not finite."""
    return any(
        (isinstance(number, int) and abs(number) > SAFE_INTEGER) or not math.isfinite(number)
        for number in _numbers(document)
    )


def set_input(interpreter: regopy.Interpreter, document: Any) -> None:
    """Give ``document`` to rego-cpp exactly.

    regopy's native ``Input`` (no JSON text to parse: p50 0.55 ms against 0.73 ms)
    carries integers within int64 exactly, and nothing else: it rounds a float to
    six decimals (900.0000001 becomes 900) and wraps an integer past int64. A
    document with a float, or such an integer, goes as JSON text through rego-cpp's
    term parser, which keeps every number as written, as OPA does.
    """
    if all(isinstance(number, int) and -_INT64 <= number < _INT64 for number in _numbers(document)):
        interpreter.set_input(regopy.Input(document))
    else:
        interpreter.set_input_term(json.dumps(document, allow_nan=False))


# What a memoized decision may not depend on: the request id is in the input for the decision
# record and OPA's decision log, and changes on every request. A policy whose modules name it, or a
# builtin whose value is not a function of the input and the bundle (the clock, randomness, the
# network, OPA's runtime), is never memoized: its decisions are evaluated every time.
MEMO_IGNORED_CONTEXT = "request_id"
_NOT_MEMOIZABLE = re.compile(
    r"request_id|\btime\.now_ns\b|\brand\.|\buuid\.rfc4122\b|\bhttp\.send\b|\bnet\.lookup|\bopa\.runtime\b"
)


def memoizable(source: PolicySource) -> bool:
    """Whether every decision of ``source`` is a function of its input, the request id aside."""
    return not any(_NOT_MEMOIZABLE.search(text) for text in source.modules.values())


def memo_key(document: dict[str, Any]) -> bytes | None:
    """The canonical JSON of ``document`` without its request id; ``None`` for one JSON cannot hold.

    The whole of what the policy sees is in it (subject, roles, community and its status, action,
    resource, purpose, the clock to the second, the emergency grant): any difference is another key.
    """
    context = document.get("context")
    if isinstance(context, dict):
        document = {**document, "context": {k: v for k, v in context.items() if k != MEMO_IGNORED_CONTEXT}}
    try:
        return canonical_json(document)
    except TypeError:
        return None


class EmbeddedEngine:
    """Rego evaluated in process by regopy (Microsoft rego-cpp).

    The policy is compiled once into a bundle; each thread queries it through
    an interpreter of its own (an interpreter is not thread-safe, a bundle is
    only read). With ``memo_size`` above 0, and a policy :func:`memoizable`,
    an input decided before (:func:`memo_key`) is answered from memory: exact,
    since the bundle is fixed, and held by this engine, so a new policy revision
    (a new engine) starts empty. A decision still gets its own id and record;
    only the evaluation is saved. The memory keeps the engine's JSON text, so a
    caller that changes a result changes only its own copy.
    """

    def __init__(self, source: PolicySource, *, memo_size: int = 0) -> None:
        self._revision = source.revision
        self._bundle = compile_policy(source)
        self._local = threading.local()
        self._memo: BoundedLRU[bytes, str] | None = (
            BoundedLRU(memo_size) if memo_size > 0 and memoizable(source) else None
        )

    @property
    def memoized(self) -> bool:
        """Whether decisions are memoized (a bound above 0 and a memoizable policy)."""
        return self._memo is not None

    @property
    def revision(self) -> str:
        """Hash of the compiled modules and data."""
        return self._revision

    def _interpreter(self) -> regopy.Interpreter:
        interpreter = getattr(self._local, "interpreter", None)
        if interpreter is None:
            interpreter = regopy.Interpreter()
            self._local.interpreter = interpreter
        return interpreter

    def evaluate(self, document: dict[str, Any]) -> Any:
        """The raw decision document (``None`` when undefined)."""
        if unsafe_number(document):
            raise PolicyUnavailable("the input carries an integer beyond ±2^53 or a number that is not finite")
        text = self._query(document) if self._memo is None else self._remembered(self._memo, document)
        if text == "undefined":
            return None
        return json.loads(text).get("bindings", {}).get("x")

    def _remembered(self, memo: BoundedLRU[bytes, str], document: dict[str, Any]) -> str:
        """The result the memo holds for ``document``, or the engine's (then kept)."""
        key = memo_key(document)
        text = memo.get(key) if key is not None else None
        record_policy_memo(hit=text is not None)
        if text is None:
            text = self._query(document)
            if key is not None:
                memo.put(key, text)
        return text

    def _query(self, document: dict[str, Any]) -> str:
        """rego-cpp's result for ``document``, as its JSON text (or ``undefined``)."""
        interpreter = self._interpreter()
        try:
            set_input(interpreter, document)
            output = interpreter.query_bundle(self._bundle)
        except regopy.RegoError as error:
            raise PolicyUnavailable("the embedded engine failed") from error
        if not output.ok():
            raise PolicyUnavailable("the embedded engine failed")
        return str(output)

    def decide(self, document: dict[str, Any]) -> Decision:
        """Evaluate and parse strictly."""
        return parse_decision(
            self.evaluate(document),
            decision_id=str(uuid.uuid4()),
            revision=self._revision,
            input_digest=digest_input(document),
        )

    def check_ready(self) -> None:
        """Decide a probe input: the policy must produce a well-formed decision."""
        self.decide(READINESS_PROBE)


class OpaEngine:
    """An OPA server (sidecar) asked over its REST Data API through opa-python-client, with a hard deadline.

    ``url`` is OPA's base URL, a path prefix included: behind a proxy at
    ``https://opa.internal/prefix`` OPA is asked at ``.../prefix/v1/data/...`` and
    ``.../prefix/health``. opa-python-client 3.0.0 builds every URL as
    ``f"{schema}{host}:{port}/{version}"`` (``opa_client/base.py``), so the prefix
    travels in ``version``. Its session is then narrowed: no retries
    (``retries=0``), no redirect followed (a redirect could carry the token
    elsewhere), nothing taken from the environment (``trust_env`` off: no proxy
    to hand the token to, no ``.netrc`` to replace it), and https verified
    against ``cacert``; when empty, against the CA bundle requests ships (certifi's,
    ``requests.utils.DEFAULT_CA_BUNDLE_PATH``), not the system's trust store: with
    ``trust_env`` off no ``REQUESTS_CA_BUNDLE`` is read either. Anything but a 200
    fails, a redirect included (``OPA refused the decision (307)``, ``OPA is not
    ready (302)``).

    ``token`` goes out as ``Authorization: Bearer`` on every request (OPA run
    with ``--authentication=token``, see ``deploy/opa``); it is never logged, and
    no error message carries it.
    """

    def __init__(self, url: str, *, timeout: float, token: str = "", cacert: str = "") -> None:
        parsed = urlparse(url)
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise PolicyUnavailable("OPA_URL is not an http(s) URL")
        if parsed.username or parsed.password or parsed.query or parsed.fragment:
            raise PolicyUnavailable("OPA_URL carries credentials, a query or a fragment (the token goes in OPA_TOKEN)")
        try:
            port = parsed.port or (443 if parsed.scheme == "https" else 8181)
        except ValueError as error:  # urllib: a port that is not a number, or past 65535
            raise PolicyUnavailable("OPA_URL has a port that is not a number from 0 to 65535") from error
        prefix = "".join(f"{part}/" for part in parsed.path.split("/") if part)
        # urlparse drops an IPv6 literal's brackets; the client joins host and port as they are.
        host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
        self._client = OpaClient(
            host=host,
            port=port,
            version=f"{prefix}v1",
            ssl=parsed.scheme == "https",
            token=token or None,
            retries=0,
            timeout=timeout,
        )
        session = self._client._session
        session.trust_env = False
        session.max_redirects = 0
        session.verify = cacert or True
        # Every answer but a 200 fails, before the client reads a body (query_rule takes any 2xx or
        # 3xx as a decision: it calls raise_for_status only).
        session.hooks["response"].append(self._require_200)
        self._health_url = f"{self._client.schema}{host}:{port}/{prefix}health?bundles"
        self._timeout = timeout
        self._revision = "opa:unknown"

    def _require_200(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        health = urlparse(response.url).path.endswith("/health")
        _require_ok(response, "OPA is not ready" if health else "OPA refused the decision")

    @property
    def revision(self) -> str:
        """The bundle revision OPA reported with its last decision."""
        return self._revision

    def decide(self, document: dict[str, Any]) -> Decision:
        """POST /v1/data/gateway/authz/decision with the input; read decision_id and provenance."""
        body = self._ask(document)
        revision = _bundle_revision(body.get("provenance"))
        if revision:
            self._revision = revision
        return parse_decision(
            body.get("result"),
            decision_id=str(body.get("decision_id") or uuid.uuid4()),
            revision=revision or self._revision,
            input_digest=digest_input(document),
        )

    def _post(self, document: dict[str, Any]) -> Any:
        return self._client.query_rule(document, DECISION_PACKAGE, DECISION_RULE, query_params={"provenance": "true"})

    def _ask(self, document: dict[str, Any]) -> dict[str, Any]:
        """One Data API call under an overall deadline (requests' timeout is per read, not total)."""
        call = _OPA_CALLS.submit(self._post, document)
        try:
            body = call.result(timeout=self._timeout)
        except FutureTimeout as error:
            call.cancel()
            raise PolicyUnavailable("OPA did not answer within the deadline") from error
        except (requests.RequestException, OSError, ValueError) as error:
            # OSError: an unreadable OPA_CACERT; ValueError: a body that is not JSON.
            raise PolicyUnavailable(f"OPA did not answer ({type(error).__name__})") from error
        if not isinstance(body, dict):
            raise PolicyUnavailable("OPA answered something other than an object")
        return body

    def check_ready(self) -> None:
        """OPA's own readiness: ``GET /health?bundles`` is 200 only once bundles are active."""
        try:  # the session's hook (_require_200) refuses anything but a 200: "OPA is not ready (...)"
            self._client._session.get(self._health_url, timeout=self._timeout, allow_redirects=False)
        except (requests.RequestException, OSError) as error:
            raise PolicyUnavailable("OPA is unreachable") from error
        body = self._ask(READINESS_PROBE)
        parse_decision(body.get("result"), decision_id="readiness", revision="", input_digest="")
        if not _bundle_revision(body.get("provenance")):
            raise PolicyUnavailable(
                "OPA reports no bundle revision: load the policy as a bundle (opa build --revision)"
            )


def _require_ok(response: requests.Response, what: str) -> None:
    """Anything but 200 is a failure; 401 is OPA's authorizer refusing the token (authorizer.go@v1.9.0:164)."""
    if response.status_code == HTTPStatus.UNAUTHORIZED:
        raise PolicyUnavailable(f"{what}: 401, the service's OPA_TOKEN is missing or not the one OPA expects")
    if response.status_code != HTTPStatus.OK:
        raise PolicyUnavailable(f"{what} ({response.status_code})")


def _bundle_revision(provenance: Any) -> str | None:
    """``opa:<bundle>=<revision>,...`` from a provenance object (or its legacy single ``revision``)."""
    if not isinstance(provenance, dict):
        return None
    bundles = provenance.get("bundles")
    if isinstance(bundles, dict):
        parts = [
            f"{name}={details['revision']}"
            for name, details in sorted(bundles.items())
            if isinstance(details, dict) and details.get("revision")
        ]
        if parts:
            return "opa:" + ",".join(parts)
    legacy = provenance.get("revision")
    return f"opa:{legacy}" if isinstance(legacy, str) and legacy else None


class _EngineHolder:
    """The process's engine, built on first use; a build failure is remembered and re-raised."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._engine: PolicyEngine | None = None
        self._error: PolicyUnavailable | None = None

    def get(self) -> PolicyEngine:
        key = (
            settings.POLICY_ENGINE,
            str(settings.POLICY_DIR),
            settings.POLICY_DECISION_MEMO_SIZE,
            settings.OPA_URL,
            settings.OPA_TIMEOUT_SECONDS,
            settings.OPA_TOKEN,
            settings.OPA_CACERT,
        )
        with self._lock:
            if key != self._key:
                self._key, self._engine, self._error = key, None, None
                try:
                    self._engine = build_engine()
                except PolicyUnavailable as error:
                    logger.error("policy engine unavailable: %s", error.why)
                    self._error = error
            if self._engine is None:
                raise self._error or PolicyUnavailable("no policy engine")
            return self._engine

    def reset(self) -> None:
        with self._lock:
            self._key = None


_holder = _EngineHolder()


def build_engine() -> PolicyEngine:
    """Build the engine ``POLICY_ENGINE`` names."""
    if settings.POLICY_ENGINE == "embedded":
        source = PolicySource.from_directory(Path(settings.POLICY_DIR))
        return EmbeddedEngine(source, memo_size=settings.POLICY_DECISION_MEMO_SIZE)
    if settings.POLICY_ENGINE == "opa":
        return OpaEngine(
            settings.OPA_URL,
            timeout=settings.OPA_TIMEOUT_SECONDS,
            token=settings.OPA_TOKEN,
            cacert=settings.OPA_CACERT,
        )
    raise PolicyUnavailable(f"unknown POLICY_ENGINE {settings.POLICY_ENGINE!r}")


def get_engine() -> PolicyEngine:
    """The engine of this process."""
    return _holder.get()


def reset_engine() -> None:
    """Forget the engine (tests, and after the policy files changed)."""
    _holder.reset()


def check_policy_ready() -> None:
    """Readiness check: the engine exists and can decide."""
    get_engine().check_ready()
