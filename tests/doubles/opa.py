"""A loopback double of the OPA server the service asks, after OPA's own source at release v1.9.0.

Read at open-policy-agent/opa v1.9.0 (the Go module's sources of that release):

- Routes: ``POST /v1/data`` and ``POST /v1/data/{path...}``, ``GET /health``
  (``v1/server/server.go`` ``initRouters``). Those are what the service uses;
  any other route, once past the authorizer, answers as Go's ServeMux does for
  one it does not know (404, ``404 page not found``).
- ``v1DataPost`` (server.go): the decision id is made first, and only when
  decision logging is configured (``v1/runtime/runtime.go`` ``decisionIDFactory``);
  ``provenance`` when the parameter is bare or ``true`` in any case
  (``getBoolParam``); both are in the answer even when the document is
  undefined, which then has no ``result`` (``DataResponseV1``, ``result``
  ``omitempty``, ``v1/server/types/types.go``). A body without ``input`` is
  answered with the ``api_usage_warning``; a body that is not JSON is 400
  ``invalid_parameter``.
- Provenance (``getProvenance``): ``version``, ``build_commit``,
  ``build_timestamp``, ``build_hostname``, and either ``bundles`` (omitted when
  empty) or, for a legacy single-bundle configuration, ``revision``.
- Errors (``v1/server/writer/writer.go`` ``ErrorAuto``, ``types.ErrorV1``
  written indented with a newline): an evaluation error is 500
  ``internal_error`` "error(s) occurred while evaluating query" with the
  ``topdown.Error`` (``code``, ``message``, ``location``) in ``errors``.
- ``GET /health`` (``unversionedGetHealth``): 200 ``{}``; with ``bundle`` or
  ``bundles`` while the bundle plugin has not activated, 500
  ``{"error": "one or more bundles are not activated"}``; with no bundle plugin
  (policy loaded from files) always 200.
- ``--authentication=token`` (``v1/server/identifier/token.go``): the identity is
  the token of an ``Authorization`` header matching ``^Bearer\\s+(\\S+)$``.
  ``--authorization=basic`` (``v1/server/authorizer/authorizer.go``): before any
  route, ``data.system.authz.allow`` is evaluated with the input
  ``{path, method, params, headers, body?, identity?}``; true serves, false is
  401 ``unauthorized`` "request rejected by administrative policy", undefined is
  500 "authorization policy missing or undefined". The policy evaluated is the
  shipped ``deploy/opa/system.authz.rego``, under the embedded engine, with
  ``opa.runtime()`` giving the double's own environment
  (``internal/runtime/runtime.go`` ``Term``).

The policy comes in as an OPA bundle (:mod:`policy.bundle`): by default the
repository's, revision :data:`BUNDLE_REVISION`, or a bundle file a test built;
its manifest's revision is what provenance reports. Behind a prefixing proxy
(``path_prefix``), the double answers only below the prefix, as the proxy
would. Fault modes let tests break it the ways a real sidecar breaks.
"""

from __future__ import annotations

import contextlib
import json
import re
import ssl
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlparse

import regopy

from policy import bundle
from policy.engine import compile_policy, set_input
from policy.errors import PolicyUnavailable
from policy.source import PolicySource
from tests.doubles.server import serving

REPOSITORY_POLICY = Path(__file__).resolve().parents[2] / "policy" / "rego"
AUTHZ_POLICY = Path(__file__).resolve().parents[2] / "deploy" / "opa"
BUNDLE_NAME = "authz"
BUNDLE_REVISION = "double-rev-1"
OPA_VERSION = "1.9.0"
TOKEN_VARIABLE = "GATEWAY_OPA_TOKEN"
# Deadlines for an engine asking the double. A test about the answer gives it seconds, which
# no loaded machine misses; a test about the deadline gives it less than the slow modes'
# delay (OpaState.delay_seconds), so the engine must give up.
ANSWER_DEADLINE_SECONDS = 5.0
DEADLINE_SECONDS = 0.3
# Go's RE2 \s is [\t\n\f\r ] (v1/server/identifier/token.go@v1.9.0: ^Bearer\s+(\S+)$).
_BEARER_RE = re.compile(r"Bearer[\t\n\f\r ]+([^\t\n\f\r ]+)")
# net/http NotFound, for a path no pattern of v1/server/server.go@v1.9.0:849-906 matches.
_GO_NOT_FOUND = b"404 page not found\n"


class _Policy:
    """A compiled query and a fresh interpreter per evaluation (one per request thread)."""

    def __init__(self, source: PolicySource, query: str) -> None:
        self._bundle = compile_policy(source, query)

    def evaluate(self, document: Any, *, has_input: bool = True) -> Any:
        interpreter = regopy.Interpreter()
        if has_input:
            # Every number exact: OPA decodes the body with util.NewJSONDecoder (server.go@v1.9.0:2883,
            # readInputPostV1), which keeps json.Number (v1/util/json.go, UseNumber).
            set_input(interpreter, document)
        output = interpreter.query_bundle(self._bundle)
        if not output.ok():
            raise PolicyUnavailable("the embedded engine failed")
        text = str(output)
        return None if text == "undefined" else json.loads(text).get("bindings", {}).get("x")


def _canonical_header(name: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey for the usual names: ``content-type`` is ``Content-Type``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


@dataclass
class OpaState:
    """What the double does; tests change it while it runs."""

    decision: _Policy
    revision: str
    # normal | undefined | non_boolean | server_error | slow | drip | not_ready | no_bundles | legacy_bundle
    mode: str = "normal"
    delay_seconds: float = 0.6
    decision_logging: bool = True
    bundle_plugin: bool = True
    path_prefix: str = ""
    authentication: str = "off"  # off | token
    authorization: str = "off"  # off | basic
    environment: dict[str, str] = field(default_factory=dict)
    authz: _Policy | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)

    def runtime(self) -> dict[str, Any]:
        """What ``opa.runtime()`` gives (internal/runtime/runtime.go@v1.9.0 ``Term``), without ``config``."""
        return {
            "env": self.environment,
            "version": OPA_VERSION,
            "commit": "",
            "authorization_enabled": self.authorization != "off",
            "skip_known_schema_check": False,
        }

    def provenance(self) -> dict[str, Any]:
        """``ProvenanceV1`` as ``getProvenance`` fills it (v1/server/server.go@v1.9.0)."""
        built = {
            "version": OPA_VERSION,
            "build_commit": "double",
            "build_timestamp": "2025-01-01T00:00:00Z",
            "build_hostname": "double",
        }
        if self.mode == "legacy_bundle":
            return {**built, "revision": self.revision}
        if self.mode == "no_bundles":
            return built  # Bundles is omitempty: an empty map is left out.
        return {**built, "bundles": {BUNDLE_NAME: {"revision": self.revision}}}


class OpaHandler(BaseHTTPRequestHandler):
    """Answers the way OPA's server does; ``state`` is set on a per-server subclass."""

    state: ClassVar[OpaState]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _start(self, status: int, payload: bytes, content_type: str = "application/json") -> bytes:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        return payload

    def _write(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        # A client that gave up (the timeout tests) has closed the connection: nothing to tell it.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(self._start(status, payload, content_type))

    def _ok(self, body: dict[str, Any]) -> bytes:
        """JSONOK: Go's json.Encoder, compact, with a newline (v1/server/writer/writer.go@v1.9.0:78)."""
        return (json.dumps(body, separators=(",", ":")) + "\n").encode()

    def _error(self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        """writer.Error (writer.go@v1.9.0:51): ErrorV1 indented by two spaces (types.go@v1.9.0:67), then a newline."""
        body: dict[str, Any] = {"code": code, "message": message}
        if errors:
            body["errors"] = errors
        self._write(status, (json.dumps(body, indent=2) + "\n").encode())

    def _read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0") or "0"))

    def _route(self) -> tuple[str, str] | None:
        """The path as OPA sees it behind the prefix (and the query), or ``None`` outside the prefix."""
        url = urlparse(self.path)
        prefix = self.state.path_prefix.rstrip("/")
        if prefix and not (url.path == prefix or url.path.startswith(prefix + "/")):
            return None
        return url.path[len(prefix) :] or "/", url.query

    def _record(self, path: str, query: str, body: Any) -> None:
        self.state.requests.append(
            {"method": self.command, "path": path, "query": query, "headers": dict(self.headers), "body": body}
        )

    def do_GET(self) -> None:
        self._serve(b"")

    def do_POST(self) -> None:
        self._serve(self._read_body())

    # The rest of OPA's API is not the double's, but its authorizer sees those calls first.
    def do_PUT(self) -> None:
        self._serve(self._read_body())

    def do_PATCH(self) -> None:
        self._serve(self._read_body())

    def do_DELETE(self) -> None:
        self._serve(b"")

    def _serve(self, raw: bytes) -> None:
        route = self._route()
        if route is None:
            self._write(404, _GO_NOT_FOUND, "text/plain; charset=utf-8")
            return
        path, query = route
        body = _json_or_none(raw)
        self._record(path, query, body)
        self._cached: list[Any] = []  # the body the authorizer parsed, if it did (GetBodyOnContext)
        if not self._authorized(path, query, raw):
            return
        if self.command == "GET" and path == "/health":
            self._health(query)
        elif self.command == "POST" and (path == "/v1/data" or path.startswith("/v1/data/")):
            self._data_post(path, query, raw, body)
        else:
            self._write(404, _GO_NOT_FOUND, "text/plain; charset=utf-8")

    def _authorized(self, path: str, query: str, raw: bytes) -> bool:
        """--authentication=token and --authorization=basic, in OPA's order; False when already answered."""
        state = self.state
        if state.authorization == "off" or state.authz is None:
            return True
        # v1/server/authorizer/authorizer.go@v1.9.0:169 makeInput (path split as parsePath, :264).
        document: dict[str, Any] = {
            "path": [unquote(part) for part in path[1:].split("/")],
            "method": self.command.upper(),
            "params": parse_qs(query, keep_blank_values=True),
            "headers": {_canonical_header(name): self.headers.get_all(name, []) for name in set(self.headers.keys())},
        }
        # expectBody (authorizer.go@v1.9.0:234-246): POST / and POST /v0/data..., /v1/data..., any JSON
        # body; one that does not parse is a 400 before any authorization (ServeHTTP: makeInput fails).
        if self.command == "POST" and _expects_body(document["path"]) and raw:
            try:
                document["body"] = json.loads(raw)
            except ValueError as error:
                self._error(400, "invalid_parameter", f"body is not JSON: {error}")
                return False
            self._cached.append(document["body"])
        match = _BEARER_RE.fullmatch(self.headers.get("Authorization", ""))  # identifier/token.go@v1.9.0:20
        if state.authentication == "token" and match:
            document["identity"] = match.group(1)
        allowed = state.authz.evaluate(document)
        if allowed is True:
            return True
        # authorizer.go@v1.9.0:133-136 (undefined: 500) and :164 (anything but true: 401).
        if allowed is None:
            self._error(500, "internal_error", "authorization policy missing or undefined")
        else:
            self._error(401, "unauthorized", "request rejected by administrative policy")
        return False

    def _health(self, query: str) -> None:
        # v1/server/server.go@v1.9.0:1265 unversionedGetHealth, :1384 writeHealthResponse.
        parameters = parse_qs(query, keep_blank_values=True)
        wants_bundles = any(_bool_parameter(parameters, name) for name in ("bundle", "bundles"))
        if wants_bundles and self.state.bundle_plugin and self.state.mode == "not_ready":
            self._write(500, self._ok({"error": "one or more bundles are not activated"}))
        else:
            self._write(200, self._ok({}))

    def _data_post(self, path: str, query: str, raw: bytes, body: Any) -> None:
        state = self.state
        if self._cached:
            # server.go@v1.9.0:2902 readInputPostV1 takes the authorizer's parse: an object's "input"
            # member is the input (a null too, and no warning); any other body carries none.
            parsed = self._cached[0]
            given = isinstance(parsed, dict) and "input" in parsed
            document = [parsed["input"]] if given else []
        elif raw.strip() and not isinstance(body, dict):
            # server.go@v1.9.0:2932 the decode into DataRequestV1 fails: writer.ErrorString 400 invalid_parameter.
            self._error(400, "invalid_parameter", "body contains malformed input document: not a JSON object")
            return
        else:
            # A JSON null decodes as no input (DataRequestV1.Input is a pointer, server.go@v1.9.0:2938).
            given = isinstance(body, dict) and body.get("input") is not None
            document = [body["input"]] if given else []
        if state.mode == "slow":
            time.sleep(state.delay_seconds)
        answer = self._answer(path, query, document)
        if answer is None:
            return
        if state.mode == "drip":
            self._drip(self._ok(answer))
        else:
            self._write(200, self._ok(answer))

    def _drip(self, payload: bytes) -> None:
        """Headers at once, then the body a byte at a time: every read is quick, the whole is not."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for byte in self._start(200, payload):
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(self.state.delay_seconds / 20)

    def _answer(self, path: str, query: str, document: list[Any]) -> dict[str, Any] | None:
        """The DataResponseV1 in v1DataPost's order: decision_id, provenance, result, warning.

        ``document`` holds the input, or nothing when the request carried none.
        """
        state = self.state
        response: dict[str, Any] = {}
        # server.go@v1.9.0:1714 (the id, made before anything else), :1826-1843 (provenance, then the result).
        if state.decision_logging:
            response["decision_id"] = str(uuid.uuid4())
        if _bool_parameter(parse_qs(query, keep_blank_values=True), "provenance"):
            response["provenance"] = state.provenance()
        if state.mode == "server_error":
            # topdown.Error (v1/topdown/errors.go@v1.9.0 functionConflictErr), location and all.
            conflict: dict[str, Any] = {
                "code": "eval_conflict_error",
                "message": "functions must not produce multiple outputs for same inputs",
                "location": {"file": "/gateway/authz.rego", "row": 1, "col": 1},
            }
            self._error(500, "internal_error", "error(s) occurred while evaluating query", [conflict])
            return None
        result = self._evaluate(path, document)
        if result is not None and state.mode != "undefined":
            response["result"] = {**result, "allow": "yes"} if state.mode == "non_boolean" else result
        if not document:
            # server.go@v1.9.0:1830, types.go@v1.9.0:167 MsgInputKeyMissing.
            response["warning"] = {"code": "api_usage_warning", "message": "'input' key missing from the request"}
        return response

    def _evaluate(self, path: str, document: list[Any]) -> Any:
        if path != "/v1/data/gateway/authz/decision":
            return None  # the double holds the one document the service asks for
        return self.state.decision.evaluate(document[0] if document else None, has_input=bool(document))


def _expects_body(path: list[str]) -> bool:
    """Whether OPA's authorizer reads a POST's body (authorizer.go@v1.9.0:234-246 expectBody)."""
    if len(path) == 1:
        return path[0] == ""
    return len(path) >= 2 and path[0] in {"v0", "v1"} and path[1] == "data"


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return None


def _bool_parameter(parameters: dict[str, list[str]], name: str) -> bool:
    """getBoolParam (v1/server/server.go@v1.9.0): true when given bare, or as "true" in any case."""
    values = parameters.get(name)
    if values is None:
        return False
    if values == [""]:
        return True
    return any(value.lower() == "true" for value in values)


def repository_bundle(revision: str = BUNDLE_REVISION) -> bytes:
    """The repository's policy as the bundle ``policy_bundle`` writes."""
    return bundle.write(REPOSITORY_POLICY, revision=revision)


def authz_policy(runtime: dict[str, Any]) -> _Policy:
    """The shipped ``system.authz`` policy, with ``opa.runtime()`` giving ``runtime``."""
    query = f"data.system.authz.allow with opa.runtime as {json.dumps(runtime)}"
    return _Policy(PolicySource.from_directory(AUTHZ_POLICY), query)


@contextmanager
def running_opa(
    bundle_file: bytes | None = None,
    *,
    token: str | None = None,
    path_prefix: str = "",
    tls: ssl.SSLContext | None = None,
    host: str = "127.0.0.1",
) -> Iterator[tuple[str, OpaState]]:
    """Serve the double on a free loopback port; yield its URL (below ``path_prefix``) and its state.

    With ``token``, it runs as ``deploy/opa`` runs OPA: ``--authentication=token
    --authorization=basic``, the shipped ``system.authz`` policy, and the token in
    its environment as ``GATEWAY_OPA_TOKEN``. With ``tls``, it serves https
    (OPA's ``--tls-cert-file``/``--tls-private-key-file``). ``host`` ``::1`` serves
    it on the IPv6 loopback (OPA's ``--addr=[::1]:8181``).
    """
    loaded = bundle.read(bundle_file if bundle_file is not None else repository_bundle())
    state = OpaState(
        decision=_Policy(loaded.source(), "data.gateway.authz.decision"),
        revision=loaded.revision,
        path_prefix=path_prefix,
    )
    if token is not None:
        state.authentication, state.authorization = "token", "basic"
        state.environment = {TOKEN_VARIABLE: token}
        state.authz = authz_policy(state.runtime())
    with serving(type("BoundOpaHandler", (OpaHandler,), {"state": state}), tls, host) as url:
        yield url + path_prefix, state
