"""A double of Kong 3.9.1's proxy path, for the declarative configuration ``gateway.kong`` generates.

It follows Kong 3.9.1 (Kong/kong tag ``3.9.1``, commit b724fc7) for the fields
and plugins our configuration uses, and nginx release-1.25.3 (the nginx of
Kong's OpenResty 1.25.3.2) where nginx decides, each step read in the file it
names. :meth:`KongDouble.request` takes what a client sends (method, the raw
request target, origin-form or absolute-form, the Host header, headers, body)
and does what nginx and Kong's access phase do:

0. nginx first: a Host header sent twice or that ``ngx_http_validate_host``
   declines is 400 (``src/http/ngx_http_request.c``), a declared
   Content-Length above ``client_max_body_size`` is 413
   (``ngx_http_core_module.c``), each rendered by ``kong/error_handlers.lua``.
   ``$host`` is the request line's host (absolute-form) or the Host header's,
   without its port or a trailing dot, lower-cased in ASCII; ``$args`` ends at
   a ``#`` (``ngx_http_parse.c``).
1. Route matching as the default ``traditional_compatible`` router compiles our
   fields (``kong/router/transform.lua``, ``fields.lua``, ``atc.lua``,
   ``utils.lua``): hosts on the Host header as sent, a port split off only
   when it is a number, ``*.`` as a suffix, case kept; a port in a route's host
   is the listener's; ``~`` paths as regexes anchored with ``^`` (and ``$`` at
   the very end, as Rust's regex reads it); prefix paths; methods. The path
   matched is the target without its query, normalised (``kong/tools/uri.lua``).
   No match: Kong's 404 ``no Route matched with those values``; an https-only
   route over http: 426 (``kong/runloop/handler.lua``).
2. The plugins of the service and the route (a route's instance replaces the
   service's, ``kong/runloop/plugins_iterator.lua``) in PRIORITY order:
   pre-function (1000000), jwt (1450), ip-restriction (990),
   request-size-limiting (951), rate-limiting (910, its response headers only:
   nothing is counted), post-function (-1000). Status codes and bodies are
   those of ``kong/plugins/*/handler.lua`` and ``jwt_parser.lua``; Kong's own
   error bodies follow ``kong/pdk/response.lua`` and ``kong/tools/http.lua``
   (JSON always: Accept is not negotiated here). Request headers are read as
   ``kong.request.get_header`` reads them (``-`` and ``_`` alike) and set or
   cleared by their exact name, case aside (lua-nginx-module v0.10.26).
3. The pre-function and post-function Lua of the configuration runs under
   LuaJIT (lupa) in the sandbox of ``kong/tools/sandbox.lua`` and
   ``kong/tools/kong-lua-sandbox.lua`` (the listed base functions, ``kong``,
   ``ngx``, a ``require`` limited to ``untrusted_lua_sandbox_requires``), with
   small stubs of the PDK calls it may make (``kong.request.*``,
   ``kong.client.get_forwarded_ip``, ``kong.service.request.set_header`` and
   ``clear_header``, ``kong.vault.get`` over an environment table as
   ``kong/vaults/env/init.lua`` reads it, ``kong.log.*``, ``kong.response.exit``
   and ``error``, ``ngx.var.*`` with ``$kong_request_id``, ``ngx.time``,
   ``ngx.encode_base64``, ``ngx.req`` headers) and ``resty.openssl.hmac`` as
   fffonion/lua-resty-openssl@1.5.1 (the version Kong 3.9.1 pins) behaves:
   ``hmac.new(key, "sha256"):final(msg)`` returns the raw digest, over
   Python's hmac. A Lua error is Kong's 500.
4. The upstream: target ``escape(normalize(path))`` (``kong/runloop/handler.lua``
   1324) plus the query as the runloop appends it after the access phase
   (1392-1393); Host the service's host and port unless ``preserve_host``
   (``kong/runloop/balancer/init.lua`` 440-455); the TLS name that Host without
   its port (``proxy_ssl_name $upstream_host``, ``kong/templates/nginx_kong.lua``
   207-208; ``src/http/ngx_http_upstream.c`` ``ngx_http_upstream_ssl_name``
   strips the port and sends no SNI for an address); with ``tls_verify`` a
   trust store only from the service's ``ca_certificates``
   (``kong/runloop/upstream_ssl.lua``) in which the service's issuer must
   chain up to a self-signed root (no partial chain), or the handshake fails,
   and the certificate checked against the TLS name (``ngx_ssl_check_host``,
   X509_check_host): 502 otherwise.
5. It sends that request, as bytes, to gunicorn's own parser with the
   settings of ``config/gunicorn.py`` (gunicorn's request-line and header
   checks, ``header_map``, its WSGI environ, ``RAW_URI`` included), and hands
   the environ to the Django service (the test client, with CSRF checks on),
   from ``address`` (a ``TRUSTED_PROXIES`` address in the tests), so the Lua's
   signature is checked by the real ``gateway.proxy``. A request gunicorn
   refuses gets its 400 page. On the way back Kong adds ``X-Kong-Request-Id``
   and, unless hidden, rate-limiting's headers beside the service's.

Not modelled: nginx's other request-line checks (a path climbing above the
root is its 400), ``trusted_ips`` and the realip module (the peer is the
client), route priority (overlapping routes are an error here), rate
counting, Kong's ``Via``/latency response headers, HTTP/2 framing, and
certificates beyond their names, issuers and signatures.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.http.response import HttpResponseBase
from django.test import Client
from django.test.client import FakePayload
from gunicorn.config import Config  # type: ignore[import-untyped]  # gunicorn ships no type hints
from gunicorn.http import errors, wsgi  # type: ignore[import-untyped]  # nor here
from gunicorn.http.message import Request  # type: ignore[import-untyped]  # nor here
from gunicorn.http.unreader import IterUnreader  # type: ignore[import-untyped]  # nor here
from lupa import luajit21

from config import gunicorn as gunicorn_settings
from config.gunicorn_worker import refusal_for, response_bytes

VERSION = "3.9.1"
Header = tuple[str, str]

# kong/plugins/*/handler.lua@3.9.1: PRIORITY.
PRIORITIES = {
    "pre-function": 1000000,
    "jwt": 1450,
    "ip-restriction": 990,
    "request-size-limiting": 951,
    "rate-limiting": 910,
    "post-function": -1000,
}
# kong/tools/uri.lua@3.9.1: reserved characters stay percent-encoded (upper-cased); the others are decoded.
_RESERVED = frozenset("!*'();:@&=+$,/?%#[]")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
# kong/tools/uri.lua@3.9.1 ESCAPE_PATTERN (compiled "joi": A-Z covers a-z too).
_UNSAFE = re.compile(r"[^!#$&'()*+,/:;=?@\[\]A-Za-z0-9\-_.~%]")
# kong/plugins/jwt/jwt_parser.lua@3.9.1:111-195: the algorithms it knows.
_JWT_ALGORITHMS = frozenset(
    {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}
    | {"EdDSA"}
)
# kong/pdk/response.lua@3.9.1:124-166, the messages of kong.response.error(status) without one.
_ERROR_MESSAGES = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    411: "Length required",
    413: "Payload too large",
    417: "Expectation failed",
    426: "Upgrade required",
    500: "An unexpected error occurred",
    # kong/error_handlers.lua@3.9.1:25, nginx's 502 (an upstream handshake that failed) rendered by Kong.
    502: "An invalid response was received from the upstream server",
}
# kong/tools/kong-lua-sandbox.lua@3.9.1:59-89: what untrusted Lua may call besides kong, ngx and require.
_SANDBOX_BASE = """
_VERSION assert error ipairs next pairs pcall select tonumber tostring type unpack xpcall
coroutine.create coroutine.resume coroutine.running coroutine.status coroutine.wrap coroutine.yield
math.abs math.acos math.asin math.atan math.atan2 math.ceil math.cos math.cosh math.deg math.exp math.fmod
math.floor math.frexp math.huge math.ldexp math.log math.log10 math.max math.min math.modf math.pi math.pow
math.rad math.random math.sin math.sinh math.sqrt math.tan math.tanh
os.clock os.date os.difftime os.time
string.byte string.char string.find string.format string.gmatch string.gsub string.len string.lower
string.match string.rep string.reverse string.sub string.upper
table.concat table.insert table.maxn table.remove table.sort
"""
# The harness, in LuaJIT itself: the sandboxed loader and the hmac module.
_HARNESS = """
local base, digest = ...
local function sandboxed(code, kong, ngx, allowed, modules)
  local env = {}
  for name in string.gmatch(base, "%S+") do
    local module, method = string.match(name, "([^%.]+)%.([^%.]+)")
    if module then
      env[module] = env[module] or {}
      env[module][method] = _G[module][method]
    else
      env[name] = _G[name]
    end
  end
  env.kong, env.ngx = kong, ngx
  env.require = function(name)
    if not allowed[name] then
      error(string.format("require '%s' not allowed within sandbox", name))
    end
    local module = modules[name]
    if module == nil then
      error("module '" .. name .. "' not found")
    end
    return module
  end
  env._G = env
  return assert(load(code, "=serverless", "t", env))
end
local hmac = {}
local mac = { __index = {} }
function hmac.new(key, kind)
  local _ = #key
  kind = kind or "sha1"
  if not digest(kind, "", "") then
    return nil, string.format('hmac.new: invalid digest type "%s"', kind)
  end
  return setmetatable({ key = key, kind = kind, parts = {} }, mac), nil
end
function mac.__index:update(...)
  for _, part in ipairs({ ... }) do
    table.insert(self.parts, part)
  end
  return true, nil
end
function mac.__index:final(part)
  if part then
    table.insert(self.parts, part)
  end
  return digest(self.kind, self.key, table.concat(self.parts))
end
return sandboxed, hmac
"""


def normalize(path: str) -> str:
    """``normalize(path, true)`` of kong/tools/uri.lua@3.9.1: decode unreserved, drop dot segments, merge slashes."""
    if path in ("", "/"):
        return path
    path = _PERCENT.sub(_decode_unreserved, path)
    if "." not in path and "//" not in path:
        return path
    segments: list[str] = []
    while path:
        path = _next_segment(path, segments)
    return "".join(segments)


def _decode_unreserved(match: re.Match[str]) -> str:
    character = chr(int(match.group(1), 16))
    return match.group(0).upper() if character in _RESERVED else character


def _next_segment(path: str, segments: list[str]) -> str:
    """One step of uri.lua's dot-segment loop: what is left of ``path`` (``segments`` holds what was kept)."""
    if path == "/.":
        return "/"
    if path == "/..":
        del segments[-1:]
        return "/"
    if path in (".", ".."):
        return ""
    for prefix, cut in (("../", 3), ("./", 2), ("/./", 2), ("/../", 3), ("//", 1)):
        if path.startswith(prefix):
            if prefix == "/../":
                del segments[-1:]
            return path[cut:]
    end = path.find("/", 1)
    segments.append(path if end < 0 else path[:end])
    return "" if end < 0 else path[end:]


def escape(path: str) -> str:
    """``escape`` of kong/tools/uri.lua@3.9.1: percent-encode every byte outside the safe set, upper-case."""
    return _UNSAFE.sub(lambda match: f"%{ord(match.group(0)):02X}", path)


def _variable_name(name: str) -> str:
    """A header name as nginx's ``$http_<name>`` compares it (ngx_http_variables.c@release-1.25.3:961-969)."""
    return name.lower().replace("-", "_")


class _Headers:
    """Request headers as nginx holds them, repeated ones kept in order.

    ``get`` is ``kong.request.get_header``: ``$http_<name>``, for which ``-``
    and ``_`` are one character and several such headers are joined with
    ``, ``; a joined value is looked up again by exactly that name
    (kong/tools/http.lua@3.9.1:554-564). Everything else matches a name
    exactly, case aside: ``get_all`` (``ngx.req.get_headers``), and ``set`` and
    ``clear`` (lua-nginx-module v0.10.26 ngx_http_lua_headers_in.c:212-214).
    """

    def __init__(self, items: Iterable[Header]) -> None:
        self.items = list(items)

    def get(self, name: str) -> str | None:
        wanted = _variable_name(name)
        values = [value for header, value in self.items if _variable_name(header) == wanted]
        joined = ", ".join(values)
        if ", " not in joined:
            return joined if values else None
        exact = self.get_all(name.replace("_", "-"))  # the headers table: lower-cased, "_" read as "-"
        return exact[0] if exact else None

    def get_all(self, name: str) -> list[str]:
        return [value for header, value in self.items if header.lower() == name.lower()]

    def set(self, name: str, value: str) -> None:
        self.clear(name)
        if value:  # an empty value removes the header (ngx_http_lua_headers_in.c@v0.10.26:212-224)
            self.items.append((name, value))

    def clear(self, name: str) -> None:
        self.items = [(header, value) for header, value in self.items if header.lower() != name.lower()]


@dataclass(frozen=True)
class Upstream:
    """The request Kong sends to the service.

    Attributes:
        target: The request target: the normalised, escaped path and the query.
        host: The Host header.
        tls_name: The name sent as SNI (none for an address) and checked against the service's certificate.
        headers: The request headers, as sent.
        address: The upstream target (``host:port``) the balancer picked; empty for a service without one.
    """

    method: str
    target: str
    host: str
    tls_name: str
    headers: tuple[Header, ...]
    body: bytes
    address: str = ""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (exactly that name, case aside), if sent."""
        values = _Headers(self.headers).get_all(name)
        return values[0] if values else None


@dataclass
class KongAnswer:
    """What the client gets back, and what happened on the way.

    Attributes:
        route: The name of the route Kong matched, if any.
        upstream: The request sent to the service, when Kong forwarded one.
        service: The service's own response, before Kong's header filter, when it answered.
        errors: The lines Kong's error log would hold (kong.log.err, Lua errors, upstream failures).
        seen: The request headers as each plugin that ran found them, by plugin name.
    """

    status: int
    headers: list[Header]
    body: bytes
    route: str | None = None
    upstream: Upstream | None = None
    service: HttpResponseBase | None = None
    errors: list[str] = field(default_factory=list)
    seen: dict[str, tuple[Header, ...]] = field(default_factory=dict)

    def values(self, name: str) -> list[str]:
        """Every value of response header ``name``, in order."""
        return _Headers(self.headers).get_all(name)

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


class _Exit(Exception):
    """kong.response.exit / error: the request ends here with this answer."""

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, dict(headers or {})


def _error(status: int, message: str | None, request_id: str, headers: Mapping[str, str] | None = None) -> _Exit:
    """kong.response.error: the JSON error template of kong/tools/http.lua@3.9.1:409-413."""
    text = message or _ERROR_MESSAGES.get(status, f"The upstream server responded with {status}")
    body = '{\n  "message":"%s",\n  "request_id":"%s"\n}' % (text, request_id)  # noqa: UP031 (Kong's own template)
    return _Exit(status, body.encode(), {"Content-Type": "application/json; charset=utf-8", **(headers or {})})


def _exit(status: int, body: Any, headers: Mapping[str, str] | None = None) -> _Exit:
    """kong.response.exit with a table body: JSON-encoded (kong/pdk/response.lua@3.9.1:654-810)."""
    encoded = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    return _Exit(status, encoded, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})


@dataclass
class _Exchange:
    """One request on its way through Kong: what the client sent, as the plugins change it."""

    method: str
    target: str
    headers: _Headers
    body: bytes
    client: str
    scheme: str
    now: int
    request_id: str
    body_limit: int = 0
    line_host: str | None = None
    errors: list[str] = field(default_factory=list)
    seen: dict[str, tuple[Header, ...]] = field(default_factory=dict)

    @property
    def raw_path(self) -> str:
        """The target without its query (kong/router/utils.lua@3.9.1:57-60 looks for ``?`` from byte 2)."""
        end = self.target.find("?", 1)
        return self.target if end < 0 else self.target[:end]

    @property
    def args(self) -> str | None:
        """``$args``: from the first ``?`` to a ``#`` (ngx_http_parse.c@release-1.25.3:1596-1605), or none at all.

        A ``#`` before the first ``?`` ends the path and leaves no query (the ``?`` after it is not looked for).
        """
        start, fragment = self.target.find("?"), self.target.find("#")
        if start < 0 or 0 <= fragment < start:
            return None
        end = self.target.find("#", start)
        return self.target[start + 1 : end if end >= 0 else None]

    @property
    def host(self) -> str:
        """``$host``: the request line's host, else the Host header's, as nginx validated it (see _nginx_host)."""
        sent = self.line_host if self.line_host is not None else next(iter(self.headers.get_all("Host")), "")
        return _nginx_host(sent) or ""

    def error(self, status: int, message: str | None = None, headers: Mapping[str, str] | None = None) -> _Exit:
        """kong.response.error for this request."""
        return _error(status, message, self.request_id, headers)


def _nginx_host(value: str) -> str | None:
    """ngx_http_validate_host@release-1.25.3 (ngx_http_request.c:2131-2213): ``$host``, or None where nginx says 400.

    The name before the first ``:`` (or ``[...]`` whole), less a last dot, lower-cased in ASCII only; a ``..``,
    a ``/``, a space or a control character anywhere, or an empty name, is refused.
    """
    if ".." in value or "/" in value or any(ord(character) <= 0x20 or character == "\x7f" for character in value):
        return None
    if value.startswith("["):
        end = value.find("]") + 1 or len(value)
    else:
        end = value.find(":") if ":" in value else len(value)
    if end and value.rfind(".") == end - 1:
        end -= 1
    if end == 0:
        return None
    return "".join(character.lower() if "A" <= character <= "Z" else character for character in value[:end])


def _request_target(target: str) -> tuple[str | None, str]:
    """The request line's host (absolute-form) and ``$request_uri``, the target from its path on.

    ngx_http_parse_request_line@release-1.25.3 starts ``uri_start`` at the ``/`` after an absolute-form host.
    """
    if target.startswith("/"):
        return None, target
    absolute = re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)(/.*)?", target, flags=re.DOTALL)
    assert absolute is not None, "an origin-form or absolute-form target"
    return absolute.group(1), absolute.group(2) or "/"


def _nginx_checks(exchange: _Exchange) -> None:
    """What nginx refuses before Kong's access phase, rendered by Kong's error handler (kong/error_handlers.lua@3.9.1).

    A second Host header (ngx_http_request.c@release-1.25.3:1817-1823) or one ngx_http_validate_host declines
    (1830-1836; the request line's host at 1145-1157): 400. A declared Content-Length over client_max_body_size
    (ngx_http_core_module.c@release-1.25.3:985-997): 413.
    """
    hosts = exchange.headers.get_all("Host")
    sent = [exchange.line_host] if exchange.line_host is not None else []
    if len(hosts) > 1 or any(_nginx_host(host) is None for host in [*hosts, *sent]):
        raise exchange.error(400)
    declared = _lua_number(next(iter(exchange.headers.get_all("Content-Length")), None))
    if exchange.body_limit and declared is not None and declared > exchange.body_limit:
        raise exchange.error(413)


def _read_body(exchange: _Exchange) -> None:
    """nginx reads the body: one without a declared length is cut off at client_max_body_size with a 413.

    ngx_http_request_body.c@release-1.25.3:1141-1151 (chunked), v2/ngx_http_v2.c:4108-4120 (HTTP/2).
    """
    if exchange.body_limit and len(exchange.body) > exchange.body_limit:
        raise exchange.error(413)


def _split_host_port(value: str) -> tuple[str, int | None]:
    """kong/router/transform.lua@3.9.1:72-99: a port after the first ``:`` when it is a number."""
    host, colon, port = value.partition(":")
    return (host, int(port)) if colon and port.isdigit() else (value, None)


def _host_matches(pattern: str, host: str, listen_port: int) -> bool:
    """kong/router/transform.lua@3.9.1:385-412: ``*.x`` is a suffix, ``x.*`` a prefix, else equal (case kept).

    A port in the route's host is compared with the port Kong was reached on (``net.dst.port``), not the Host's.
    """
    name, wanted_port = _split_host_port(pattern)
    if wanted_port is not None and wanted_port != listen_port:
        return False
    if name.startswith("*"):
        return host.endswith(name[1:])
    if name.endswith("*"):
        return host.startswith(name[:-1])
    return host == name


def _path_matches(pattern: str, path: str) -> bool:
    """A ``~`` path is a regex with ``^`` added (transform.lua@3.9.1:322-331); others are prefixes."""
    if not pattern.startswith("~"):
        return path.startswith(pattern)
    body = pattern[1:]
    if body.endswith("$") and not body.endswith("\\$"):
        body = body[:-1] + r"\Z"  # Rust's $ is the end of the text only; Python's also matches before a last \n
    return re.match("^" + body, path) is not None


def _route_matches(route: Mapping[str, Any], method: str, host_header: str, path: str, listen_port: int) -> bool:
    host, _ = _split_host_port(host_header)  # kong/router/atc.lua@3.9.1:366-369
    if route.get("methods") and method not in route["methods"]:
        return False
    if route.get("hosts") and not any(_host_matches(pattern, host, listen_port) for pattern in route["hosts"]):
        return False
    return not route.get("paths") or any(_path_matches(pattern, path) for pattern in route["paths"])


def _b64url(text: str) -> bytes | None:
    """jwt_parser.lua@3.9.1 base64_decode: padded, then ngx.base64's url-safe decoding (nil when invalid)."""
    padded = text + "=" * (-len(text) % 4)
    try:
        return binascii.a2b_base64(padded.translate(str.maketrans("-_", "+/")).encode(), strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def _lua_number(value: str | None) -> float | None:
    """Lua's tonumber on a header value (decimal or 0x hex, surrounding spaces allowed)."""
    if value is None:
        return None
    text = value.strip()
    try:
        return float(int(text, 16)) if text.lower().startswith("0x") else float(text)
    except ValueError:
        return None


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


class KongDouble:
    """Kong 3.9.1 in front of the Django service, for one declarative configuration.

    Args:
        config: The declarative configuration (``kong_config()``'s dict, or its YAML loaded).
        env: The environment Kong's ``env`` vault reads (``KONG_GATEWAY_PROXY_SECRET``, ...).
        service_ca: The PEM of the CA that issued the service's certificate.
        service_chain: PEMs of the CA certificates the service sends with its own in the handshake.
        service_names: The DNS names of the service's certificate.
        clock: Kong's clock (``ngx.time`` is its whole seconds).
        address: The address the service sees Kong's requests come from.
        sandbox_requires: ``untrusted_lua_sandbox_requires``.
        client_max_body_size: nginx's limit on a request body in bytes (``nginx_http_client_max_body_size``; 0: none).
        listen_port: The port Kong listens on for clients.
        forward: Sends the upstream request to the picked target and returns the answer (default: the Django
            test client in this process).
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        env: Mapping[str, str],
        service_ca: str,
        service_chain: Sequence[str] = (),
        service_names: Sequence[str] = ("gateway.internal",),
        clock: Callable[[], float],
        address: str = "10.20.0.5",
        sandbox_requires: Sequence[str] = ("resty.openssl.hmac",),
        client_max_body_size: int = 0,
        listen_port: int = 443,
        forward: Callable[[Upstream], KongAnswer] | None = None,
    ) -> None:
        self.config, self.env, self.clock, self.address = config, dict(env), clock, address
        self.forward, self._balanced = forward, 0
        self.service_ca = x509.load_pem_x509_certificate(service_ca.encode())
        self.service_chain = [x509.load_pem_x509_certificate(pem.encode()) for pem in service_chain]
        self.service_names = tuple(service_names)
        self.client_max_body_size, self.listen_port = client_max_body_size, listen_port
        self._lua = luajit21.LuaRuntime(encoding="latin-1", unpack_returned_tuples=True, register_eval=False)
        self._sandboxed, self._hmac = self._lua.execute(_HARNESS, _SANDBOX_BASE, _digest)
        self._allowed = self._lua.table_from({name: True for name in sandbox_requires})
        self._modules = self._lua.table_from({"resty.openssl.hmac": self._hmac})

    def request(
        self,
        method: str,
        target: str,
        *,
        host: str,
        headers: Iterable[Header] = (),
        body: bytes = b"",
        client: str = "203.0.113.7",
        scheme: str = "https",
    ) -> KongAnswer:
        """What Kong answers ``method target`` with Host ``host``; a body gets a Content-Length unless sent chunked.

        ``target`` is origin-form (``/path?query``) or absolute-form (``https://host/path?query``), and a str of
        the bytes sent, one character each (as Latin-1 decodes them).
        """
        request_headers = _Headers([("Host", host), *headers])
        framed = request_headers.get_all("Content-Length") or request_headers.get_all("Transfer-Encoding")
        if body and not framed:
            request_headers.items.append(("Content-Length", str(len(body))))
        line_host, target = _request_target(target)
        exchange = _Exchange(
            method=method,
            target=target,
            headers=request_headers,
            body=body,
            client=client,
            scheme=scheme,
            now=int(self.clock()),
            request_id=uuid.uuid4().hex,
            body_limit=self.client_max_body_size,
            line_host=line_host,
        )
        route = None
        try:
            _nginx_checks(exchange)
            route = self._route(exchange)
            if route is None:
                raise exchange.error(404, "no Route matched with those values")  # kong/runloop/handler.lua@3.9.1:1197
            answer = self._proxy(exchange, route)
        except _Exit as done:
            answer = KongAnswer(status=done.status, headers=list(done.headers.items()), body=done.body)
        answer.route = route["name"] if route else None
        answer.errors, answer.seen = exchange.errors, exchange.seen
        self._header_filter(exchange, route, answer)
        return answer

    # Routing and the access phase.

    def _service(self) -> Mapping[str, Any]:
        return dict(self.config["services"][0])

    def _route(self, exchange: _Exchange) -> dict[str, Any] | None:
        path = normalize(exchange.raw_path)  # kong/router/atc.lua@3.9.1:446-449
        # The Host header as sent: ngx.req.get_headers() (atc.lua@3.9.1:447, kong/tools/http.lua@3.9.1:547-552).
        host = next(iter(exchange.headers.get_all("Host")), "")
        matches = [
            route
            for route in self._service()["routes"]
            if _route_matches(route, exchange.method, host, path, self.listen_port)
        ]
        assert len(matches) <= 1, f"routes overlap ({[route['name'] for route in matches]}): priority is not modelled"
        return matches[0] if matches else None

    def _plugins(self, route: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The service's plugins with the route's in their place (plugins_iterator.lua@3.9.1:215-267)."""
        chosen = {plugin["name"]: plugin.get("config", {}) for plugin in self._service().get("plugins", [])}
        chosen |= {plugin["name"]: plugin.get("config", {}) for plugin in route.get("plugins", [])}
        return sorted(chosen.items(), key=lambda item: -PRIORITIES[item[0]])

    def _proxy(self, exchange: _Exchange, route: Mapping[str, Any]) -> KongAnswer:
        protocols = route.get("protocols", ["http", "https"])
        if "https" in protocols and "http" not in protocols and exchange.scheme != "https":
            # kong/runloop/handler.lua@3.9.1:1260-1270 (https_redirect_status_code 426).
            raise exchange.error(
                426, "Please use HTTPS protocol", {"Connection": "Upgrade", "Upgrade": "TLS/1.2, HTTP/1.1"}
            )
        var = self._variables(exchange)
        for name, conf in self._plugins(route):
            exchange.seen[name] = tuple(exchange.headers.items)
            self._access(name, conf, exchange, var)
        _read_body(exchange)  # nginx reads the whole body before it proxies (proxy_request_buffering on)
        target = str(var["upstream_uri"])
        if exchange.target.endswith("?") or var["is_args"] == "?":  # kong/runloop/handler.lua@3.9.1:1392-1393
            target += "?" + (exchange.args or "")
        upstream = self._upstream(exchange, route, target)
        self._verify_tls(exchange, upstream)
        return self._forward(upstream)

    def _variables(self, exchange: _Exchange) -> Any:
        """The nginx variables the Lua may read, as a Lua table (``ngx.var``)."""
        args = exchange.args
        values: dict[str, Any] = {
            "request_uri": exchange.target,
            "upstream_uri": escape(normalize(exchange.raw_path)),  # kong/runloop/handler.lua@3.9.1:1324
            "is_args": "?" if args else "",
            "host": exchange.host,
            "kong_request_id": exchange.request_id,  # lua-kong-nginx-module's, kong/templates/nginx_kong.lua@3.9.1:106
            "remote_addr": exchange.client,
            "scheme": exchange.scheme,
            "request_method": exchange.method,
        }
        if args is not None:
            values["args"] = args
        return self._lua.table_from(values)

    def _access(self, name: str, conf: dict[str, Any], exchange: _Exchange, var: Any) -> None:
        handlers: dict[str, Callable[[], None]] = {
            "pre-function": lambda: self._serverless(conf, exchange, var),
            "post-function": lambda: self._serverless(conf, exchange, var),
            "jwt": lambda: self._jwt(conf, exchange),
            "ip-restriction": lambda: _ip_restriction(conf, exchange),
            "request-size-limiting": lambda: _size_limit(conf, exchange),
            "rate-limiting": lambda: None,
        }
        handlers[name]()

    # The Lua of pre-function and post-function.

    def _serverless(self, conf: Mapping[str, Any], exchange: _Exchange, var: Any) -> None:
        """kong/plugins/pre-function/_handler.lua@3.9.1: each chunk sandboxed and run (a returned function too)."""
        kong, ngx = self._kong(exchange, var), self._ngx(exchange, var)
        for code in conf.get("access", []):
            try:
                result = self._sandboxed(code, kong, ngx, self._allowed, self._modules)()
                if luajit21.lua_type(result) == "function":
                    result()
            except luajit21.LuaError as error:
                exchange.errors.append(str(error))
                raise exchange.error(500) from None

    def _kong(self, exchange: _Exchange, var: Any) -> Any:
        """The PDK calls the generated Lua makes, bound to ``exchange``."""
        table = self._lua.table_from

        def vault_get(reference: str) -> tuple[str | None, str | None]:
            # kong/vaults/env/init.lua@3.9.1:47: the resource upper-cased, dashes as underscores.
            match = re.fullmatch(r"\{vault://env/([^}/?#]+)\}", reference)
            value = self.env.get(match.group(1).upper().replace("-", "_")) if match else None
            return (
                (value, None)
                if value is not None
                else (None, "could not get value from external vault (no value found)")
            )

        def log(*parts: Any) -> None:
            exchange.errors.append("".join(str(part) for part in parts))

        def response_exit(status: int, body: Any = None, headers: Any = None) -> None:
            raise _exit(int(status), _python(body), _python(headers))

        def response_error(status: int, message: Any = None, headers: Any = None) -> None:
            raise exchange.error(int(status), None if message is None else str(message), _python(headers))

        return table(
            {
                "request": table(
                    {
                        "get_header": exchange.headers.get,
                        "get_method": lambda: exchange.method,
                        "get_host": lambda: exchange.host,
                        "get_path_with_query": lambda: exchange.target,
                        "get_raw_query": lambda: exchange.args or "",
                    }
                ),
                "client": table({"get_forwarded_ip": lambda: exchange.client, "get_ip": lambda: exchange.client}),
                "service": table(
                    {"request": table({"set_header": _set_header(exchange), "clear_header": exchange.headers.clear})}
                ),
                "vault": table({"get": vault_get}),
                "log": table({"err": log, "warn": log, "notice": log}),
                "response": table({"exit": response_exit, "error": response_error}),
            }
        )

    def _ngx(self, exchange: _Exchange, var: Any) -> Any:
        return self._lua.table_from(
            {
                "var": var,
                "time": lambda: exchange.now,
                "encode_base64": lambda data: base64.b64encode(str(data).encode("latin-1")).decode(),
                "req": self._lua.table_from(
                    {"set_header": _set_header(exchange), "clear_header": exchange.headers.clear}
                ),
            }
        )

    # jwt.

    def _jwt(self, conf: Mapping[str, Any], exchange: _Exchange) -> None:
        """kong/plugins/jwt/handler.lua@3.9.1:154-264,298-317 (no anonymous consumer): 401, or the consumer."""
        if not conf.get("run_on_preflight", True) and exchange.method == "OPTIONS":
            return
        header, claims, signature, signed = _decoded(_token(conf, exchange))
        key_claim = str(conf.get("key_claim_name", "iss"))
        kid = claims.get(key_claim)
        kid = header.get(key_claim) if kid is None or kid is False else kid  # Lua's `or`: "" counts as a value
        if kid is None or kid == "":
            raise _unauthorized(f"{'Invalid' if kid == '' else 'No mandatory'} '{key_claim}' in claims")
        credential = self._credential(str(kid))
        if credential is None:
            raise _unauthorized(f"No credentials found for given '{key_claim}'")
        if header.get("alg") != credential.get("algorithm", "HS256"):
            raise _unauthorized("Invalid algorithm")
        if not _verified(credential, signed, signature):
            raise _unauthorized("Invalid signature")
        errors = _claim_errors(conf, claims, exchange.now)
        if errors:
            raise _exit(401, errors, {"WWW-Authenticate": _INVALID_TOKEN})
        _set_consumer(exchange, credential)

    def _credential(self, kid: str) -> dict[str, Any] | None:
        for consumer in self.config.get("consumers", []):
            for secret in consumer.get("jwt_secrets", []):
                if secret.get("key") == kid:
                    return {**secret, "consumer": consumer}
        return None

    # The upstream.

    def pick_target(self, name: str) -> tuple[str, int] | None:
        """The (host, port) of upstream ``name``'s next target by weight; None when no upstream has that name.

        Weighted round-robin over the targets (kong/runloop/balancer/round_robin.lua@3.9.1): a target of
        weight 0 is never picked; with every weight 0 Kong answers 503 "failure to get a peer from the ring-balancer"
        (kong/runloop/balancer/init.lua@3.9.1).
        """
        upstream = next((entry for entry in self.config.get("upstreams", []) if entry["name"] == name), None)
        if upstream is None:
            return None
        ring = [entry["target"] for entry in upstream.get("targets", []) for _ in range(int(entry.get("weight", 100)))]
        if not ring:
            raise _error(503, "failure to get a peer from the ring-balancer", "")
        picked = ring[self._balanced % len(ring)]
        self._balanced += 1
        address, _, port = picked.rpartition(":")
        return address, int(port)

    def _upstream(self, exchange: _Exchange, route: Mapping[str, Any], target: str) -> Upstream:
        url = urlsplit(str(self._service()["url"]))
        port = url.port or (443 if url.scheme == "https" else 80)
        hostname, address = str(url.hostname), ""
        picked = self.pick_target(hostname)
        if picked is not None:
            upstream = next(entry for entry in self.config["upstreams"] if entry["name"] == hostname)
            # balancer/init.lua@3.9.1:395-396: the upstream's host_header, else the target's host.
            hostname, port = str(upstream.get("host_header") or picked[0]), picked[1]
            address = f"{picked[0]}:{picked[1]}"
        if route.get("preserve_host"):
            host = next(iter(exchange.headers.get_all("Host")), "")  # kong/router/atc.lua@3.9.1:413
        else:
            default = (url.scheme, port) in {("https", 443), ("http", 80)}
            host = hostname if default else f"{hostname}:{port}"  # balancer/init.lua@3.9.1:446-455
        tls_name = host[: host.find("]") + 1] if host.startswith("[") else host.split(":", 1)[0]
        headers = _forwarded_headers(exchange, host, self.listen_port)
        return Upstream(exchange.method, target, host, tls_name, tuple(headers), exchange.body, address)

    def _verify_tls(self, exchange: _Exchange, upstream: Upstream) -> None:
        """The handshake nginx makes with ``tls_verify``: a chain up to a root of the trust store, and the name."""
        service = self._service()
        if not service.get("tls_verify"):
            return
        pems = {entry["id"]: entry["cert"] for entry in self.config.get("ca_certificates", [])}
        store = [x509.load_pem_x509_certificate(str(pems[ca]).encode()) for ca in service.get("ca_certificates", [])]
        # kong/pdk/service.lua@3.9.1:253-256: without a store, "unable to get local issuer certificate".
        failure = _chain_failure(self.service_ca, self.service_chain, store)
        if failure:
            exchange.errors.append(f"upstream SSL certificate verify error: ({failure})")
            raise exchange.error(502)
        if not any(_name_matches(name, upstream.tls_name) for name in self.service_names):
            exchange.errors.append(f'upstream SSL certificate does not match "{upstream.tls_name}"')
            raise exchange.error(502)

    def _forward(self, upstream: Upstream) -> KongAnswer:
        """The service answers: gunicorn parses the bytes Kong sends, Django's test client takes its environ."""
        if self.forward is not None:
            return self.forward(upstream)
        peer = (self.address, 40000)
        url = urlsplit(str(self._service()["url"]))
        try:
            parsed = Request(_GUNICORN, IterUnreader([_wire(upstream)]), peer)
        except errors.ParseException as refused:
            # gunicorn's worker (config/gunicorn_worker.py) answers what gunicorn refuses with a problem document.
            refusal = refusal_for(refused)
            head, body = response_bytes(refusal, uuid.uuid4().hex).split(b"\r\n\r\n", 1)
            fields = [line.split(": ", 1) for line in head.decode("ascii").split("\r\n")[1:]]
            return KongAnswer(refusal.status, [(name, value) for name, value in fields], body, upstream=upstream)
        _, environ = wsgi.create(parsed, None, peer, (url.hostname, url.port or 443), _GUNICORN)
        environ = {key: value for key, value in environ.items() if key != "gunicorn.socket"}
        # Whatever ends TLS in front of gunicorn (its certfile, or a terminator on the pod) makes the scheme https.
        environ |= {"wsgi.url_scheme": "https", "wsgi.input": FakePayload(parsed.body.read())}
        response = Client(enforce_csrf_checks=True).request(**environ)
        body = response.getvalue()  # the test client closes the response itself, as a WSGI server would
        return KongAnswer(
            status=response.status_code, headers=list(response.items()), body=body, upstream=upstream, service=response
        )

    # The header filter.

    def _header_filter(self, exchange: _Exchange, route: Mapping[str, Any] | None, answer: KongAnswer) -> None:
        plugins = dict(self._plugins(route)) if route else {}
        limits = plugins.get("rate-limiting")
        if limits is not None and not limits.get("hide_client_headers", False) and answer.upstream is not None:
            # kong/plugins/rate-limiting/handler.lua@3.9.1:160-204, added beside the service's (Kong issue #14353).
            minute = int(limits.get("minute", 0))
            answer.headers += [
                ("RateLimit-Limit", str(minute)),
                ("RateLimit-Remaining", str(minute - 1)),
                ("RateLimit-Reset", str(60 - exchange.now % 60)),
                ("X-RateLimit-Limit-Minute", str(minute)),
                ("X-RateLimit-Remaining-Minute", str(minute - 1)),
            ]
        # Every answer, the service's and Kong's own (kong/runloop/handler.lua@3.9.1:1597-1605; the default
        # headers = ..., x-kong-request-id, kong/templates/kong_defaults.lua@3.9.1:71).
        answer.headers = [(header, value) for header, value in answer.headers if header.lower() != "x-kong-request-id"]
        answer.headers.append(("X-Kong-Request-Id", exchange.request_id))


def _gunicorn_config() -> Config:
    """gunicorn's settings as it reads config/gunicorn.py: every name it knows (gunicorn/app/base.py@27.0.1:139-146)."""
    config = Config()
    for name in dir(gunicorn_settings):
        if name in config.settings:
            config.set(name, getattr(gunicorn_settings, name))
    return config


_GUNICORN = _gunicorn_config()


def _wire(upstream: Upstream) -> bytes:
    """The request as nginx sends it upstream (HTTP/1.1), one byte per character."""
    lines = [f"{upstream.method} {upstream.target} HTTP/1.1", *(f"{name}: {value}" for name, value in upstream.headers)]
    return "\r\n".join([*lines, "", ""]).encode("latin-1") + upstream.body


def _self_signed(certificate: x509.Certificate) -> bool:
    return _issued_by(certificate, certificate)


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _chain_failure(
    issuer: x509.Certificate, presented: Sequence[x509.Certificate], store: Sequence[x509.Certificate]
) -> str | None:
    """OpenSSL's verdict on the service's chain, whose leaf ``issuer`` signed, as ``code:message`` (None: trusted).

    The store is searched before what the service presented (X509_V_FLAG_TRUSTED_FIRST, OpenSSL 3's default), and
    the chain must end at a self-signed certificate of the store: Kong's store has no X509_V_FLAG_PARTIAL_CHAIN
    (kong/runloop/certificate.lua@3.9.1:221-240, lua-resty-openssl 1.5.1 x509/store.lua:51-80). The messages are
    OpenSSL's (``openssl verify`` gives the same three).
    """
    current, trusted = issuer, issuer in store
    if not trusted and issuer not in presented:
        return "20:unable to get local issuer certificate"
    for _ in range(len(store) + len(presented)):
        if _self_signed(current):
            return None if trusted else "19:self-signed certificate in certificate chain"
        above = next((candidate for candidate in [*store, *presented] if _issued_by(current, candidate)), None)
        if above is None:
            return "2:unable to get issuer certificate" if trusted else "20:unable to get local issuer certificate"
        current, trusted = above, above in store
    return "2:unable to get issuer certificate"


def _python(value: Any) -> Any:
    """A Lua table (recursively) as a Python dict; anything else as it is."""
    if luajit21.lua_type(value) != "table":
        return value
    return {str(key): _python(item) for key, item in value.items()}


def _set_header(exchange: _Exchange) -> Callable[[str, Any], None]:
    def set_header(name: str, value: Any) -> None:
        text = "true" if value is True else str(value)
        exchange.headers.set(name, text)

    return set_header


def _digest(kind: str, key: str, message: str) -> str | None:
    """HMAC over Python's hmac for the Lua hmac module; the raw digest as a Lua string, None for an unknown digest."""
    if kind.lower() not in hashlib.algorithms_available:
        return None
    return hmac.new(key.encode("latin-1"), message.encode("latin-1"), kind.lower()).digest().decode("latin-1")


def _ip_restriction(conf: Mapping[str, Any], exchange: _Exchange) -> None:
    """kong/plugins/ip-restriction/handler.lua@3.9.1:33-92."""
    address = ipaddress.ip_address(exchange.client)

    def listed(entries: Sequence[str] | None) -> bool:
        return any(address in ipaddress.ip_network(entry, strict=False) for entry in entries or [])

    if listed(conf.get("deny")) or (conf.get("allow") and not listed(conf.get("allow"))):
        message = conf.get("message") or f"IP address not allowed: {exchange.client}"
        raise exchange.error(int(conf.get("status") or 403), str(message))


def _size_limit(conf: Mapping[str, Any], exchange: _Exchange) -> None:
    """kong/plugins/request-size-limiting/handler.lua@3.9.1:31-67."""
    factor = {"bytes": 1, "kilobytes": 1024, "megabytes": 1048576}[str(conf.get("size_unit", "megabytes"))]
    allowed = int(conf.get("allowed_payload_size", 128)) * factor
    lengths = exchange.headers.get_all("Content-Length")
    length = _lua_number(lengths[0]) if len(lengths) == 1 else None  # two of them: a table, not a number
    if length is None:
        chunked = exchange.headers.get_all("Transfer-Encoding") == ["chunked"]
        if conf.get("require_content_length") and not chunked:
            raise exchange.error(411, "A valid Content-Length header is required")
        _read_body(exchange)  # kong.request.get_raw_body(): nginx reads it, within client_max_body_size
        length = float(len(exchange.body))
    if length > allowed:
        expect = (exchange.headers.get("Expect") or "").strip().lower()
        raise exchange.error(417 if expect == "100-continue" else 413, "Request size limit exceeded")


_INVALID_TOKEN = 'Bearer error="invalid_token"'


def _unauthorized(message: str, challenge: str = _INVALID_TOKEN) -> _Exit:
    return _exit(401, {"message": message}, {"WWW-Authenticate": challenge})


def _token(conf: Mapping[str, Any], exchange: _Exchange) -> str:
    """retrieve_tokens of kong/plugins/jwt/handler.lua@3.9.1:28-98 (query, cookies, then headers): exactly one."""
    found: dict[str, None] = {}
    query = parse_qsl(exchange.args or "", keep_blank_values=True)
    for name in conf.get("uri_param_names", ["jwt"]):
        found |= {value: None for key, value in query if key == name and value}
    for name in conf.get("cookie_names", []):
        cookie = next((value for key, value in _cookies(exchange) if key == name), "")
        found |= {cookie: None} if cookie else {}
    for name in conf.get("header_names", ["authorization"]):
        bearer = re.search(r"\s*[Bb]earer\s+(.+)", exchange.headers.get(name) or "")
        found |= {bearer.group(1): None} if bearer and bearer.group(1) else {}
    if not found:
        raise _unauthorized("Unauthorized", "Bearer")
    if len(found) > 1:
        raise _unauthorized("Multiple tokens provided")
    return next(iter(found))


def _cookies(exchange: _Exchange) -> list[tuple[str, str]]:
    pairs = (part.strip().partition("=") for part in (exchange.headers.get("Cookie") or "").split(";"))
    return [(name, value) for name, _, value in pairs if name]


def _decoded(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """decode_token of jwt_parser.lua@3.9.1:254-289: header, claims, signature and the signed part; else 401."""
    parts = token.split(".", 2)
    if len(parts) < 3:
        raise _unauthorized("Bad token; invalid JSON")  # base64_decode(nil) fails inside the pcall
    header_64, claims_64, signature_64 = parts
    try:
        header = json.loads(_b64url(header_64) or b"")
        claims = json.loads(_b64url(claims_64) or b"")
    except ValueError:
        raise _unauthorized("Bad token; invalid JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _unauthorized("Bad token; invalid JSON")  # not modelled exactly: Lua would index a non-table
    if not isinstance(header.get("alg"), str) or header["alg"] not in _JWT_ALGORITHMS:
        raise _unauthorized("Bad token; invalid alg")
    signature = _b64url(signature_64)
    if signature is None:
        raise _unauthorized("Bad token; invalid signature")
    return header, claims, signature, f"{header_64}.{claims_64}".encode()


def _verified(credential: Mapping[str, Any], signed: bytes, signature: bytes) -> bool:
    """jwt_parser.lua@3.9.1:188-193 (EdDSA: the consumer's PEM verifies the signature); only EdDSA is modelled."""
    assert credential.get("algorithm") == "EdDSA", "the double verifies EdDSA only"
    key = load_pem_public_key(str(credential["rsa_public_key"]).encode())
    assert isinstance(key, Ed25519PublicKey)
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        return False
    return True


def _claim_errors(conf: Mapping[str, Any], claims: Mapping[str, Any], now: int) -> dict[str, str]:
    """verify_registered_claims and check_maximum_expiration of jwt_parser.lua@3.9.1:396-465 (no leeway)."""
    errors: dict[str, str] = {}
    for name in conf.get("claims_to_verify") or []:
        value = claims.get(name)
        if not _is_number(value):
            errors[name] = "must be a number"
        elif name == "nbf" and value > now:
            errors[name] = "token not valid yet"
        elif name == "exp" and value <= now:
            errors[name] = "token expired"
    if errors:
        return errors
    maximum = int(conf.get("maximum_expiration") or 0)
    expiry = claims.get("exp")
    if maximum > 0 and (not _is_number(expiry) or expiry - now > maximum):
        return {"exp": "exceeds maximum allowed expiration"}
    return {}


def _set_consumer(exchange: _Exchange, credential: Mapping[str, Any]) -> None:
    """set_consumer of kong/plugins/jwt/handler.lua@3.9.1:110-147 (the consumer's id: a stable uuid of its name)."""
    consumer = credential["consumer"]
    exchange.headers.set("X-Consumer-ID", str(uuid.uuid5(uuid.NAMESPACE_URL, f"consumer:{consumer['username']}")))
    exchange.headers.clear("X-Consumer-Custom-ID")
    exchange.headers.set("X-Consumer-Username", str(consumer["username"]))
    exchange.headers.set("X-Credential-Identifier", str(credential["key"]))
    exchange.headers.clear("X-Anonymous-Consumer")


# What nginx sets in place of a client's header of exactly that name, case aside: nginx_kong.lua@3.9.1:190-205 and
# nginx's own defaults (ngx_http_proxy_module.c@release-1.25.3:822-832). Any other header goes on as sent.
_SET_BY_THE_PROXY = frozenset(
    {"host", "connection", "te", "upgrade", "via", "x-real-ip", "x-kong-request-id", "content-length"}
    | {"transfer-encoding", "keep-alive", "expect"}
    | {f"x-forwarded-{name}" for name in ("for", "proto", "host", "port", "path", "prefix")}
)


def _forwarded_headers(exchange: _Exchange, host: str, listen_port: int) -> list[Header]:
    """The client's headers as the plugins left them, with the headers nginx and Kong set."""
    kept = [(name, value) for name, value in exchange.headers.items if name.lower() not in _SET_BY_THE_PROXY]
    client_forwarded = exchange.headers.get("X-Forwarded-For")
    kept += [
        ("Host", host),
        ("Connection", "keep-alive"),
        ("Via", f"1.1 kong/{VERSION}"),
        # kong/runloop/handler.lua@3.9.1:1234-1350: the peer is not in trusted_ips, its X-Forwarded-* are not kept.
        ("X-Forwarded-For", f"{client_forwarded}, {exchange.client}" if client_forwarded else exchange.client),
        ("X-Forwarded-Proto", exchange.scheme),
        ("X-Forwarded-Host", exchange.host),
        ("X-Forwarded-Port", str(listen_port)),
        ("X-Forwarded-Path", exchange.raw_path),
        ("X-Real-IP", exchange.client),
        ("X-Kong-Request-Id", exchange.request_id),  # headers_upstream = x-kong-request-id (kong_defaults.lua@3.9.1:72)
    ]
    # strip_path is false on every route of ours: no X-Forwarded-Prefix (an empty proxy_set_header sends none).
    if exchange.body or exchange.headers.get_all("Content-Length"):
        kept.append(("Content-Length", str(len(exchange.body))))  # nginx buffers the body and sends its length
    return kept


def _name_matches(certificate_name: str, tls_name: str) -> bool:
    """X509_check_host for a DNS name: equal ignoring case, or ``*.`` standing for one leftmost label."""
    name, wanted = certificate_name.lower(), tls_name.lower()
    if name.startswith("*."):
        head, dot, rest = wanted.partition(".")
        return bool(head) and bool(dot) and rest == name[2:]
    return name == wanted
