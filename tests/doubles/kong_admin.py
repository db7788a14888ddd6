"""A loopback double of Kong 3.9.1's admin API in DB-less mode: what the blue/green commands call.

Written from Kong 3.9.1's source (Kong/kong tag 3.9.1):

- ``POST /config`` (kong/api/routes/config.lua:40-66, 110-190): the body is the declarative configuration
  (JSON, or a form/JSON field ``config``); none is 400 ``{"message": "expected a declarative configuration"}``;
  one the loader refuses is 400 with the DECLARATIVE_CONFIG error (kong/db/errors.lua:50, 76, 489-497:
  ``code`` 14, ``name`` "invalid declarative configuration", ``message`` "declarative config is invalid: ...",
  ``fields``); ``check_hash=1`` with the configuration already loaded is 304; otherwise 201 with the entities.
- ``GET /config`` (config.lua:100-110): ``{"config": <the loaded configuration>}``.
- ``GET /status`` (kong/api/routes/kong.lua): ``database.reachable`` and the ``configuration_hash``.
- ``GET /upstreams/{name}/targets``: the loaded targets, paged as ``{"data": [...], "next": null}``.
- Writes to entities in DB-less mode (kong/db/strategies/off/init.lua:377, kong/api/api_helpers.lua:376-378):
  405 with ``code`` 12, ``name`` "operation unsupported", "cannot create 'upstreams' entities when not using a
  database".

The hash is an MD5 of the configuration's canonical JSON (Kong hashes its own serialisation; only equality is
modelled). Only the checks the commands rely on are modelled: ``_format_version`` "3.0", each upstream's name and
target weights in 0..65535, and that the service's host names a loaded upstream or a host.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

EMPTY_HASH = "0" * 32
_METHODS_REFUSED = {"POST": "create", "PUT": "create or update", "PATCH": "update", "DELETE": "delete"}


def config_hash(config: Any) -> str:
    """The hash ``GET /status`` reports for a configuration."""
    return hashlib.md5(json.dumps(config, sort_keys=True).encode(), usedforsecurity=False).hexdigest()


def _validation_errors(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        return {"@entity": ["expected a table"]}
    if config.get("_format_version") != "3.0":
        return {"_format_version": "expected one of: 3.0"}
    errors: dict[str, Any] = {}
    for index, upstream in enumerate(config.get("upstreams", [])):
        for position, target in enumerate(upstream.get("targets", [])):
            weight = target.get("weight", 100)
            if not isinstance(weight, int) or not 0 <= weight <= 65535:
                errors.setdefault("upstreams", {})[str(index)] = {
                    "targets": {str(position): {"weight": "value should be between 0 and 65535"}}
                }
    return errors


class KongAdminDouble:
    """The admin API on ``127.0.0.1:<port>``; ``posts`` records every configuration it loaded."""

    def __init__(self) -> None:
        self.config: dict[str, Any] | None = None
        self.posts: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The base URL (``KONG_ADMIN_URL``)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> KongAdminDouble:
        """Serve in a thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def targets(self, upstream: str) -> list[dict[str, Any]]:
        """The loaded targets of ``upstream``."""
        for entry in (self.config or {}).get("upstreams", []):
            if entry["name"] == upstream:
                return list(entry.get("targets", []))
        return []

    def load(self, body: bytes, query: str) -> tuple[int, Any]:
        """What ``POST /config?query`` with ``body`` answers."""
        if not body:
            return 400, {"message": "expected a declarative configuration"}
        try:
            config = json.loads(body)
        except ValueError:
            return 400, {"code": 14, "name": "invalid declarative configuration", "message": "failed parsing"}
        if isinstance(config, dict) and "_format_version" not in config and "config" in config:
            config = config["config"]
            config = json.loads(config) if isinstance(config, str) else config
        errors = _validation_errors(config)
        if errors:
            message = "declarative config is invalid: " + json.dumps(errors, sort_keys=True)
            return 400, {"code": 14, "name": "invalid declarative configuration", "message": message, "fields": errors}
        check_hash = parse_qs(query).get("check_hash") == ["1"]
        with self._lock:
            if check_hash and self.config is not None and config_hash(self.config) == config_hash(config):
                return 304, None
            self.config = config
            self.posts.append(config)
        return 201, {key: value for key, value in config.items() if not key.startswith("_")}

    def answer(self, method: str, path: str, query: str, body: bytes) -> tuple[int, Any]:
        """Route one admin request."""
        if method == "POST" and path == "/config":
            return self.load(body, query)
        if method == "GET" and path == "/config":
            return 200, {"config": self.config}
        if method == "GET" and path == "/status":
            current = config_hash(self.config) if self.config is not None else EMPTY_HASH
            return 200, {"database": {"reachable": True}, "configuration_hash": current, "server": {}}
        parts = path.strip("/").split("/")
        if parts[0] in {"upstreams", "services", "routes", "targets"} and method in _METHODS_REFUSED:
            message = f"cannot {_METHODS_REFUSED[method]} '{parts[-1] if len(parts) == 3 else parts[0]}' entities"
            return 405, {"code": 12, "name": "operation unsupported", "message": message + " when not using a database"}
        if method == "GET" and len(parts) == 3 and parts[0] == "upstreams" and parts[2] == "targets":
            return 200, {"data": self.targets(parts[1]), "next": None}
        return 404, {"message": "Not found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, payload = double.answer(self.command, url.path, url.query, body)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815 - http.server's names

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        return Handler
