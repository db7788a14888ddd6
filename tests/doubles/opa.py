"""A loopback double of OPA's REST Data API, written from OPA's documentation.

What it follows:

- ``POST /v1/data/{path}`` with ``{"input": ...}`` answers 200 ``{"result": ...}``;
  an undefined document answers 200 ``{}`` (no ``result`` member).
- ``decision_id`` is present when decision logging is on; ``?provenance=true``
  adds ``provenance`` with ``bundles: {name: {revision}}``.
- Errors are JSON ``{"code": ..., "message": ...}`` with a 4xx/5xx status.
- ``GET /health?bundles`` is 200 once bundles are activated, 500 before.

It evaluates with the embedded engine over the repository's policy, so its
answers are the ones a real OPA loaded with ``policy/rego`` would give. Fault
modes let tests break it the ways a real sidecar breaks.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

from policy.engine import EmbeddedEngine
from policy.source import PolicySource
from tests.doubles.server import serving

REPOSITORY_POLICY = Path(__file__).resolve().parents[2] / "policy" / "rego"
BUNDLE_REVISION = "double-rev-1"
# Deadlines for an engine asking the double. A test about the answer gives it seconds, which
# no loaded machine misses; a test about the deadline gives it less than the slow modes'
# delay (OpaState.delay_seconds), so the engine must give up.
ANSWER_DEADLINE_SECONDS = 5.0
DEADLINE_SECONDS = 0.3


@dataclass
class OpaState:
    """What the double does; tests change ``mode`` while it runs."""

    engine: EmbeddedEngine
    # normal | undefined | non_boolean | server_error | slow | drip | not_ready | no_bundles
    mode: str = "normal"
    delay_seconds: float = 0.6
    decision_logging: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)


class OpaHandler(BaseHTTPRequestHandler):
    """Answers the way OPA's REST API does; ``state`` is set on a per-server subclass."""

    state: ClassVar[OpaState]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _start(self, status: int, body: dict[str, Any]) -> bytes:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        return payload

    def _send(self, status: int, body: dict[str, Any]) -> None:
        # A client that gave up (the timeout tests) has closed the connection: nothing to tell it.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(self._start(status, body))

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path != "/health":
            self._send(404, {"code": "resource_not_found", "message": "not found"})
        elif self.state.mode == "not_ready" and "bundles" in parse_qs(url.query, keep_blank_values=True):
            self._send(500, {"code": "internal_error", "message": "bundles not activated"})
        else:
            self._send(200, {})

    def do_POST(self) -> None:
        url = urlparse(self.path)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        self.state.requests.append({"path": url.path, "query": url.query, "body": body})
        if self.state.mode == "slow":
            time.sleep(self.state.delay_seconds)
        status, answer = self._answer(url.path, url.query, body)
        if self.state.mode == "drip":
            self._drip(status, answer)
        else:
            self._send(status, answer)

    def _drip(self, status: int, body: dict[str, Any]) -> None:
        """Headers at once, then the body a byte at a time: every read is quick, the whole is not."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for byte in self._start(status, body):
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(self.state.delay_seconds / 20)

    def _answer(self, path: str, query: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        state = self.state
        if state.mode == "server_error":
            return 500, {"code": "internal_error", "message": "eval_conflict_error"}
        if path != "/v1/data/gateway/authz/decision" or state.mode == "undefined":
            return 200, {}
        result = state.engine.evaluate(body.get("input", {}))
        if state.mode == "non_boolean":
            result = {**result, "allow": "yes"}
        response: dict[str, Any] = {"result": result}
        if state.decision_logging:
            response["decision_id"] = str(uuid.uuid4())
        # OPA reads a boolean parameter as true when it is "true" (any case) or given bare.
        provenance = parse_qs(query, keep_blank_values=True).get("provenance")
        if provenance is not None and provenance[0].lower() in {"", "true"}:
            bundles = {} if state.mode == "no_bundles" else {"authz": {"revision": BUNDLE_REVISION}}
            response["provenance"] = {"version": "1.0.0", "bundles": bundles}
        return 200, response


@contextmanager
def running_opa(policy_dir: Path = REPOSITORY_POLICY) -> Iterator[tuple[str, OpaState]]:
    """Serve the double on a free loopback port; yield its URL and its state."""
    state = OpaState(engine=EmbeddedEngine(PolicySource.from_directory(policy_dir)))
    with serving(type("BoundOpaHandler", (OpaHandler,), {"state": state})) as url:
        yield url, state
