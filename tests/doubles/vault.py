"""A loopback double of the parts of Vault the service uses, answering as OpenBao v2.6.2 does.

Written from OpenBao's source at tag v2.6.2 (the Vault fork of HashiCorp
Vault 1.14; every behaviour names its file in a comment, here and in
:mod:`tests.doubles.vault_transit`, :mod:`tests.doubles.vault_system`,
:mod:`tests.doubles.vault_acl` and :mod:`tests.doubles.vault_framework`).
Where HashiCorp Vault answers differently and the service cares, a mode
says so: writes answered 204 before Vault 1.14.0, an AEAD failure answered
500 before 1.10.0, the audit device API allowed.

A request goes as it goes in Vault (``http/logical.go``,
``vault/request_handling.go``): ``sys/health`` first, answered even when
sealed; then a sealed Vault answers 503 ``{"errors": ["Vault is sealed"]}``;
then the token (403 "permission denied" when unknown, expired or outside its
CIDRs), then the token's **ACL** over the request path, the capability the
method asks (GET ``read``, POST/PUT ``update`` or ``create`` where the path
has an existence check, DELETE ``delete``) and the request's parameters
(403 again); then the route, its fields (unknown ones ignored with a
warning), its handler. The Transit paths the double serves have no existence
check (only ``encrypt/`` has one), so every POST to them is ``update``
(``request_handling.go@v2.6.2:462-495``).

Tokens: :data:`TOKEN` is a root token (no ACL); :func:`bootstrap` leaves the
state ``deploy/vault/bootstrap.sh`` leaves (Transit at ``transit/``,
``disable_upsert``, the shipped policy, AppRole and its role) and returns a
service token and AppRole credentials bound to the policy. Every ACL
decision on a token that is not root goes to ``state.observers``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from tests.doubles.server import serving
from tests.doubles.vault_acl import ACL, Decision
from tests.doubles.vault_framework import Call, FieldError, Reply, Route, refuse, validated
from tests.doubles.vault_system import APPROLE_ROUTES, SYSTEM_ROUTES, AppRoleMount, SystemState, Token, health
from tests.doubles.vault_transit import KEY_TYPES, ROUTES, TransitKey, TransitMount

__all__ = [
    "KEY_TYPES",
    "POLICY_NAME",
    "ROLE_NAME",
    "SHIPPED_POLICY",
    "TOKEN",
    "Decision",
    "ServiceCredentials",
    "TransitKey",
    "VaultState",
    "as_root",
    "bootstrap",
    "running_vault",
]

TOKEN = "double-root-token"
POLICY_NAME = "gateway-service"
ROLE_NAME = "gateway-service"
SHIPPED_POLICY = Path(__file__).resolve().parents[2] / "deploy" / "vault" / "gateway-service.hcl"
# The ACL denial text: CheckToken appends ErrPermissionDenied to a multierror (request_handling.go@v2.6.2).
PERMISSION_DENIED = "1 error occurred:\n\t* permission denied\n\n"
# The system backend's root paths the double serves (logical_system.go@v2.6.2:67-88 PathsSpecial.Root:
# "auth/*", "audit", "audit/*"): a token's policy must grant sudo on them as well.
_SUDO_EXACT = frozenset({"sys/audit"})
_SUDO_PREFIXES = ("sys/auth/", "sys/audit/")
_METHODS = {"GET": "read", "POST": "update", "PUT": "update", "DELETE": "delete", "LIST": "list"}


@dataclass(frozen=True)
class ServiceCredentials:
    """What the bootstrap hands the service: a token bound to its policy, and its AppRole role and secret IDs."""

    token: str
    role_id: str
    secret_id: str


@dataclass
class VaultState:
    """What the double holds; tests flip ``sealed`` and ``deny`` while it runs.

    ``ignored`` lists every request field a route did not know, with its path:
    Vault ignores them (warning only when it answers a body), and the fixtures
    fail a test whose provider sent one.
    """

    system: SystemState = field(default_factory=SystemState)
    transit: dict[str, TransitMount] = field(default_factory=dict)
    deny: bool = False
    calls: Counter[str] = field(default_factory=Counter)
    observers: list[Callable[[Decision], None]] = field(default_factory=list)
    ignored: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    service: ServiceCredentials | None = None
    # A path prefix answered by something in front of Vault instead: (status, body, content type).
    proxy_answers: dict[str, tuple[int, bytes, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.system.tokens.setdefault(TOKEN, Token(("root",)))

    @property
    def mount(self) -> TransitMount:
        """The Transit mount at ``transit/`` (the provider's default)."""
        return self.transit["transit/"]

    @property
    def keys(self) -> dict[str, TransitKey]:
        """The keys of ``transit/``."""
        return self.mount.keys

    @property
    def sealed(self) -> bool:
        """Whether the Vault is sealed (503 to everything, ``sys/health`` included)."""
        return self.system.sealed

    @sealed.setter
    def sealed(self, value: bool) -> None:
        self.system.sealed = value

    def expire_tokens(self) -> None:
        """Every token but the root token stops working (their leases ended)."""
        for token in [token for token, entry in self.system.tokens.items() if not entry.root]:
            del self.system.tokens[token]


@dataclass(frozen=True)
class Request:
    """One HTTP request as the double reads it: the path after ``/v1/``, its query, JSON body, token, client."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    token: str = ""
    client: str = "127.0.0.1"


@dataclass(frozen=True)
class _Target:
    backend: Any
    route: Route | None
    captures: dict[str, str]


def serve(state: VaultState, request: Request) -> Reply:
    """The double's answer to ``request``, in Vault's order: health, seal, token, ACL, route, fields, handler."""
    if request.path == "sys/health" and request.method in {"GET", "HEAD"}:
        return health(state.system, request.query)
    if state.system.sealed:
        return refuse("Vault is sealed", 503)  # consts.ErrSealed, response_util.go@v2.6.2 AdjustErrorStatusCode
    operation = _operation(request)
    if operation is None:
        return Reply(405, errors=[])
    return _routed_request(state, request, operation)


def _routed_request(state: VaultState, request: Request, operation: str) -> Reply:
    data = request.body if operation == "update" else {k: v for k, v in request.query.items() if k != "list"}
    target = _target(state, request.path)
    if target is not None and target.route is not None and operation == "update" and target.route.exists:
        probe = Call(operation, request.path, target.captures, {**data, **target.captures}, request.client)
        operation = "update" if target.route.exists(target.backend, probe) else "create"
    if target is None or target.route is None or not target.route.unauthenticated:
        refused = _authorized(state, request, operation, data)
        if refused is not None:
            return refused
    if target is None:
        return refuse(f'no handler for route "{request.path}". route entry not found.', 404)
    if target.route is None:
        return refuse("unsupported path", 404)
    return _handled(state, request, target, data, operation)


def _operation(request: Request) -> str | None:
    operation = _METHODS.get(request.method)
    if operation == "read" and request.query.get("list", "").lower() in {"1", "t", "true"}:
        return "list"
    return operation


def _target(state: VaultState, path: str) -> _Target | None:
    """The backend mounted at the longest prefix of ``path`` (the router's ``MatchingMount``), and its route."""
    if path.startswith("sys/"):
        return _routed(state.system, SYSTEM_ROUTES, path.removeprefix("sys/"))
    if path.startswith("auth/"):
        inner = path.removeprefix("auth/")
        mount = _longest(state.system.auth, inner)
        if mount is None or state.system.auth[mount].type != "approle":
            return None
        backend = AppRoleMount(state.system.roles.setdefault(mount, {}), state.system)
        return _routed(backend, APPROLE_ROUTES, inner.removeprefix(mount))
    mount = _longest(state.system.mounts, path)
    if mount is None or state.system.mounts[mount].type != "transit":
        return None
    return _routed(state.transit.setdefault(mount, TransitMount()), ROUTES, path.removeprefix(mount))


def _longest(table: dict[str, Any], path: str) -> str | None:
    matches = [mount for mount in table if (path + "/").startswith(mount)]
    return max(matches, key=len) if matches else None


def _routed(backend: Any, routes: tuple[Route, ...], relative: str) -> _Target:
    for route in routes:
        captures = route.match(relative.rstrip("/"))
        if captures is not None:
            return _Target(backend, route, captures)
    return _Target(backend, None, {})


def _authorized(state: VaultState, request: Request, capability: str, data: dict[str, Any]) -> Reply | None:
    """None when the token may do this; else the 403 Vault answers (the observers hear every ACL decision)."""
    token = state.system.tokens.get(request.token)
    if token is None or not token.usable_from(request.client) or state.deny:
        return refuse("permission denied", 403)
    policies = [state.system.policies[name] for name in token.policies if name in state.system.policies]
    path = request.path.strip("/")
    sudo = path in _SUDO_EXACT or path.startswith(_SUDO_PREFIXES)
    decision = ACL(policies, root=token.root).decide(request.path, capability, data, sudo=sudo)
    if not token.root:
        for observer in state.observers:
            observer(decision)
    return None if decision.allowed else refuse(PERMISSION_DENIED, 403)


def _handled(state: VaultState, request: Request, target: _Target, data: dict[str, Any], operation: str) -> Reply:
    route = target.route
    assert route is not None
    handler = route.operations.get(operation)
    if handler is None:
        return refuse("unsupported operation", 405)
    try:
        fields, warnings = validated(route, data)
    except FieldError as error:
        return refuse(str(error))
    ignored = tuple(sorted(name for name in data if name not in route.fields))
    if ignored:
        state.ignored.append((request.path, ignored))
    reply = handler(target.backend, Call(operation, request.path, target.captures, fields, request.client))
    if reply.errors is None:
        state.calls[handler.__name__.lstrip("_")] += 1
        if reply.status != 204:
            reply.warnings = warnings + reply.warnings
    return reply


class VaultHandler(BaseHTTPRequestHandler):
    """Reads the HTTP request, asks :func:`serve`, writes its reply; ``state`` is set on a per-server subclass."""

    state: ClassVar[VaultState]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_LIST(self) -> None:
        self._serve("LIST")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length", "0") or "0")
        raw = self.rfile.read(length) if length else b""
        if not url.path.startswith("/v1/"):
            self._write(refuse("unsupported path", 404))
            return
        path = url.path.removeprefix("/v1/")
        proxied = next((answer for prefix, answer in self.state.proxy_answers.items() if path.startswith(prefix)), None)
        if proxied is not None:
            self._write_raw(*proxied)
            return
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as error:
            self._write(refuse(f"failed to decode JSON input: {error}"))
            return
        if not isinstance(body, dict):
            self._write(refuse("failed to decode JSON input: the body is not a JSON object"))
            return
        query = {name: values[0] for name, values in parse_qs(url.query, keep_blank_values=True).items()}
        token = self.headers.get("X-Vault-Token", "")
        request = Request(method, path, query, body, token, self.client_address[0])
        self._write(serve(self.state, request))

    def _write(self, reply: Reply) -> None:
        body = reply.body()
        self._write_raw(reply.status, b"" if body is None else json.dumps(body).encode(), "application/json")

    def _write_raw(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


def as_root(state: VaultState, method: str, path: str, body: dict[str, Any] | None = None) -> Reply:
    """One request with the root token, through the same pipeline as HTTP (no socket)."""
    return serve(state, Request(method, path, body=body or {}, token=TOKEN))


def bootstrap(state: VaultState, *, policy_text: str | None = None) -> ServiceCredentials:
    """What ``deploy/vault/bootstrap.sh`` leaves behind (its defaults), done through the double's API as root."""
    text = SHIPPED_POLICY.read_text(encoding="utf-8") if policy_text is None else policy_text
    role = f"auth/approle/role/{ROLE_NAME}"
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "sys/mounts/transit", {"type": "transit", "description": "compliance gateway keys"}),
        ("POST", "transit/config/keys", {"disable_upsert": True}),
        ("PUT", f"sys/policies/acl/{POLICY_NAME}", {"policy": text}),
        ("POST", "sys/auth/approle", {"type": "approle", "description": "compliance gateway service"}),
        (
            "POST",
            role,
            {
                "token_policies": POLICY_NAME,
                "token_no_default_policy": True,
                "token_ttl": "15m",
                "token_max_ttl": "30m",
                "secret_id_ttl": "720h",
                "secret_id_num_uses": 0,
            },
        ),
    ]
    for method, path, body in steps:
        reply = as_root(state, method, path, body)
        assert reply.errors is None, (path, reply.errors)
    role_id = as_root(state, "GET", f"{role}/role-id").data or {}
    secret = as_root(state, "POST", f"{role}/secret-id").data or {}
    token = state.system.issue_token([POLICY_NAME])
    return ServiceCredentials(token, str(role_id["role_id"]), str(secret["secret_id"]))


@contextmanager
def running_vault(*, bootstrapped: bool = True) -> Iterator[tuple[str, VaultState]]:
    """Serve the double on a free loopback port; yield its address and its state (bootstrapped unless asked)."""
    state = VaultState()
    if bootstrapped:
        state.service = bootstrap(state)
    with serving(type("BoundVaultHandler", (VaultHandler,), {"state": state})) as url:
        yield url, state
