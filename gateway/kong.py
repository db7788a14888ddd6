"""Kong 3.9 (open source, DB-less) declarative configuration, generated from the URLconf.

The committed ``deploy/kong/kong.yml`` is exactly what :func:`kong_config`
returns for the repository's settings (a test checks it), so every
``/api/v1`` route has a Kong route and nothing else does. It is not a file to
deploy: the token-verifying public keys and the CA chain of the service's
certificate (up to its root) are deployment state, and ``kong_config
--with-keys --upstream-ca <pem>`` adds them at deploy time.

What Kong enforces here is a first line only; the service enforces all of it
again (Kong's jwt plugin checks no audience, its rate limiter cannot see
users, and forwarded headers are trusted only with the signature Kong adds).
Behaviour is taken from Kong 3.9.1's source; the file and line are named where
a choice rests on one.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import yaml
from django.conf import settings

from policy.routes import Route, is_guarded, walk

SERVICE = "compliance-gateway"
UPSTREAM = "compliance-gateway-colours"
COLOURS = ("blue", "green")
CONSUMER = "gateway-token-issuer"
# The header the post-function names the client's host in; the service puts it back as the Host.
GATEWAY_HOST = "X-Gateway-Host"
_CONVERTERS = {
    "uuid": "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "int": "[0-9]+",
    "slug": "[-a-zA-Z0-9_]+",
    "str": "[^/]+",
    "path": ".+",
}
# Headers only Kong may set. The jwt plugin sets or clears the consumer headers only on routes where it
# runs (kong/plugins/jwt/handler.lua@3.9.1:110-147); the post-function sets the request id and the gateway's
# own three.
_ONLY_KONG_SETS = (
    "X-Request-ID",
    "X-Consumer-ID",
    "X-Consumer-Custom-ID",
    "X-Consumer-Username",
    "X-Consumer-Groups",
    "X-Credential-Identifier",
    "X-Anonymous-Consumer",
    GATEWAY_HOST,
    "X-Gateway-Client",
    "X-Gateway-Signature",
)
# pre-function (priority 1000000, before every other plugin): the client's copies are dropped. By name, not
# by walking the request's headers: kong.request.get_headers() stops at 100 (kong/pdk/request.lua@3.9.1:664).
# A name is matched exactly, ignoring case only (lua-nginx-module v0.10.26 ngx_http_lua_headers_in.c:212-214):
# an X_Request_ID stays, and gunicorn drops it (header_map = "drop", config/gunicorn.py).
_DROP_CLIENT_HEADERS = (
    "for _, name in ipairs({ " + ", ".join(f'"{name}"' for name in _ONLY_KONG_SETS) + " }) do\n"
    "  kong.service.request.clear_header(name)\n"
    "end\n"
)
# The target Kong forwards: the path normalised and escaped before the plugins run
# (kong/init.lua@3.9.1:1199-1203, kong/runloop/handler.lua@3.9.1:1324, kong/router/utils.lua@3.9.1:57-64),
# and the query as the runloop appends it after the access phase (kong/runloop/handler.lua@3.9.1:1392-1393).
FORWARDED_TARGET = """local path = ngx.var.upstream_uri
if ngx.var.is_args == "?" or string.sub(ngx.var.request_uri, -1) == "?" then
  path = path .. "?" .. (ngx.var.args or "")
end
"""
# The query goes on as the client sent it, and nginx lets bytes 0x80-0xFF through (ngx_http_parse.c@release-1.25.3,
# usual[]) where gunicorn refuses anything outside 0x21-0x7E (gunicorn/http/message.py@27.0.1:141): Kong's 400,
# not gunicorn's HTML one.
_RAW_QUERY = """local args = ngx.var.args
if args and string.find(args, "[^!-~]") then
  return kong.response.error(400, "Percent-encode the query string")
end
"""
# The Host header as sent (port included): what Kong's router matched (kong/router/atc.lua@3.9.1:447 reads it
# with kong/tools/http.lua@3.9.1:545-565, as kong.request.get_header does). Not kong.request.get_host(), nginx's
# $host, which drops the port and for an absolute-form target is the request line's host
# (ngx_http_request.c@release-1.25.3:1145-1168,1846-1848).
# The request id is Kong's own ($kong_request_id, the one in its error bodies, error log and access log), never a
# client's: kong.request.get_header("X-Request-ID") would also read an X_Request_ID
# (ngx_http_variables.c@release-1.25.3:961-969), which the pre-function cannot clear.
# post-function (priority -1000, after every other plugin): sign what the service needs to trust this hop: time,
# method, the client's host, the forwarded target, the request id and the address Kong saw. A missing module or
# secret is a 500 with one error-log line (never the secret), not a Lua stack trace.
_SIGNER = (
    """local ok, hmac = pcall(require, "resty.openssl.hmac")
if not ok then
  kong.log.err("gateway signature: resty.openssl.hmac is not allowed (KONG_UNTRUSTED_LUA_SANDBOX_REQUIRES)")
  return kong.response.error(500)
end
local secret = kong.vault.get("{vault://env/kong-gateway-proxy-secret}")
if not secret or secret == "" then
  kong.log.err("gateway signature: KONG_GATEWAY_PROXY_SECRET is not set")
  return kong.response.error(500)
end
"""
    + _RAW_QUERY
    + FORWARDED_TARGET
    + f"""local now = tostring(ngx.time())
local host = kong.request.get_header("host") or ""
local id = ngx.var.kong_request_id or ""
local client = kong.client.get_forwarded_ip()
local message = table.concat({{ now, kong.request.get_method(), host, path, id, client }}, "\\n")
local mac = hmac.new(secret, "sha256")
local digest = mac and mac:final(message)
if not digest then
  kong.log.err("gateway signature: HMAC-SHA256 failed")
  return kong.response.error(500)
end
kong.service.request.set_header("X-Request-ID", id)
kong.service.request.set_header("{GATEWAY_HOST}", host)
kong.service.request.set_header("X-Gateway-Client", client)
kong.service.request.set_header("X-Gateway-Signature", "t=" .. now .. ",sig=" .. ngx.encode_base64(digest))
"""
)
_VIEW_METHODS = ("get", "post", "put", "patch", "delete")
_CA_NAMESPACE = uuid.UUID("6d1f3a52-9c4e-4b7a-8e0d-2f5a7c9b1e36")


def kong_path(route: Route) -> str:
    """A Kong regex path (``~/...$``) for a Django route; literal parts escaped."""
    parts = re.split(r"(<(?:\w+:)?\w+>)", route.path)
    pattern = ""
    for part in parts:
        converter = re.fullmatch(r"<(?:(\w+):)?\w+>", part)
        if converter:
            pattern += _CONVERTERS.get(converter.group(1) or "str", _CONVERTERS["str"])
        else:
            pattern += re.escape(part).replace("\\/", "/")
    return f"~/{pattern}$"


def _view_methods(route: Route) -> list[str]:
    view_class = getattr(route.view, "view_class", None) or getattr(route.view, "cls", None)
    if view_class is None:
        return ["GET"]
    return [method.upper() for method in _VIEW_METHODS if hasattr(view_class, method)]


def _jwt_plugin() -> dict[str, Any]:
    # No nbf at Kong: jwt_parser.lua@3.9.1:400 refuses nbf > ngx.time() with no leeway, so a Kong clock a
    # second behind the issuer's refuses fresh tokens; the service checks nbf with JWT_LEEWAY_SECONDS. The
    # ceiling on exp - ngx.time() (jwt_parser.lua@3.9.1:460) gets the same leeway.
    return {
        "name": "jwt",
        "config": {
            "uri_param_names": [],
            "cookie_names": [],
            "header_names": ["authorization"],
            "key_claim_name": "kid",
            "claims_to_verify": ["exp"],
            "maximum_expiration": int(settings.ACCESS_TOKEN_TTL_SECONDS) + int(settings.JWT_LEEWAY_SECONDS),
            "run_on_preflight": False,
        },
    }


def _size_limit() -> dict[str, Any]:
    # In bytes, so Kong's limit is the service's exactly (handler.lua@3.9.1:15-27 knows the unit "bytes"). No
    # require_content_length: it answers 411 to every request without a Content-Length that is not chunked,
    # whatever its method (handler.lua@3.9.1:49-50), and a POST without a body (curl -X POST, an HTTP/2 client)
    # sends none. A body without a length is read and then measured (handler.lua@3.9.1:53-65); nginx's own
    # client_max_body_size (deploy/kong/kong.conf) stops it while it is read.
    return {
        "name": "request-size-limiting",
        "config": {"allowed_payload_size": int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE), "size_unit": "bytes"},
    }


def _community_route(route: Route) -> dict[str, Any]:
    methods = _view_methods(route)
    if "GET" in methods:
        methods.append("HEAD")  # the service answers HEAD as GET (policy.views.normalised_method)
    entry: dict[str, Any] = {
        "name": str(route.name),
        "hosts": [f"*.{settings.KONG_COMMUNITY_DOMAIN_SUFFIX}"],
        "paths": [kong_path(route)],
        "methods": sorted(methods),
        "protocols": ["https"],
        "https_redirect_status_code": 426,
        "strip_path": False,
        # Kong sends the service's own host as Host and as the TLS name (nginx_kong.lua@3.9.1:207-208,
        # balancer/init.lua@3.9.1:440-455); the client's host travels signed in X-Gateway-Host.
        "preserve_host": False,
    }
    if is_guarded(route.view):
        entry["plugins"] = [_jwt_plugin()]
    return entry


def _routes() -> list[dict[str, Any]]:
    community = [
        _community_route(route)
        for route in walk(settings.ROOT_URLCONF)
        # Health probes come from the orchestrator, straight to the pods: not through Kong.
        if route.name and route.path.startswith(("api/", ".well-known/"))
    ]
    static = {
        "name": "static-assets",
        "hosts": [f"*.{settings.KONG_COMMUNITY_DOMAIN_SUFFIX}", *settings.PUBLIC_HOSTS],
        "paths": [settings.STATIC_URL],
        "methods": ["GET", "HEAD"],
        "protocols": ["https"],
        "strip_path": False,
        "preserve_host": False,
    }
    admin = {
        "name": "platform-admin",
        "hosts": list(settings.PUBLIC_HOSTS),
        "paths": ["/admin/"],
        "protocols": ["https"],
        "strip_path": False,
        "preserve_host": False,
        # Without a message the 404 meant to hide the admin says "IP address not allowed: <address>"
        # (kong/plugins/ip-restriction/handler.lua@3.9.1:33-37).
        "plugins": [
            {
                "name": "ip-restriction",
                "config": {"allow": list(settings.KONG_ADMIN_ALLOW), "status": 404, "message": "Not Found"},
            }
        ],
    }
    routes = [*sorted(community, key=lambda entry: entry["name"]), static, admin]
    names = [entry["name"] for entry in routes]
    if len(set(names)) != len(names):
        raise ValueError(f"Kong route names must be unique: {sorted(name for name in names if names.count(name) > 1)}")
    return routes


def ca_certificate_id(pem: str) -> str:
    """A stable id for a CA certificate entity: the same certificate always gets the same id."""
    return str(uuid.uuid5(_CA_NAMESPACE, hashlib.sha256(pem.strip().encode()).hexdigest()))


def _rate_limiting() -> dict[str, Any]:
    return {
        "name": "rate-limiting",
        "config": {
            "minute": int(settings.RATE_LIMIT_PER_IP),
            "limit_by": "ip",
            "policy": "redis",
            "fault_tolerant": False,
            # The service's RateLimit-* headers are the ones that count (its limits are per user too); Kong's
            # would be added beside them (kong/plugins/rate-limiting/handler.lua@3.9.1:160-204).
            "hide_client_headers": True,
            "redis": {
                "host": settings.KONG_REDIS_HOST,
                "port": 6379,
                "ssl": True,
                "ssl_verify": True,
                # SNI and the certificate's host name are checked only when a server name is given
                # (kong/plugins/rate-limiting/policies/init.lua@3.9.1:110-112).
                "server_name": settings.KONG_REDIS_SERVER_NAME,
                # Referenceable (kong/tools/redis/schema.lua@3.9.1:15-19). Empty, no AUTH is sent
                # (policies/init.lua@3.9.1:135-145); unset, it resolves to "" too, with a warning "unable to
                # resolve reference" (kong/db/schema/init.lua@3.9.1:1693-1702): set it empty for a Redis without AUTH.
                "password": "{vault://env/kong-redis-password}",  # nosec B105 - a vault reference, not a password
            },
        },
    }


def default_targets() -> dict[str, tuple[str, int]]:
    """Blue live at ``KONG_UPSTREAM_URL``'s address (weight 100), green idle beside it (weight 0)."""
    url = urlsplit(settings.KONG_UPSTREAM_URL)
    port = url.port or 443
    return {"blue": (f"{url.hostname}:{port}", 100), "green": (f"{url.hostname}:{port + 1}", 0)}


def _upstream(targets: Mapping[str, tuple[str, int]]) -> dict[str, Any]:
    """The upstream: one target per colour with its weight (0..65535; 0 takes no traffic).

    ``host_header`` keeps the Host and the TLS name Kong checks the certificate against the service's own
    name whatever target is picked: with an upstream the name is the target's host otherwise
    (kong/runloop/balancer/init.lua@3.9.1:395-396, 440-455).
    """
    unknown = sorted(set(targets) - set(COLOURS))
    if unknown or not targets:
        raise ValueError(f"targets are named by colour {COLOURS}, not {unknown}")
    if sum(weight for _, weight in targets.values()) <= 0:
        raise ValueError("at least one target needs a weight above 0")
    return {
        "name": UPSTREAM,
        "algorithm": "round-robin",
        "host_header": str(urlsplit(settings.KONG_UPSTREAM_URL).hostname),
        "targets": [
            {"target": address, "weight": int(weight), "tags": [f"colour:{colour}"]}
            for colour, (address, weight) in sorted(targets.items())
        ],
    }


def kong_config(
    *,
    signing_keys: Sequence[tuple[str, str]] | None = None,
    upstream_cas: Sequence[str] | None = None,
    targets: Mapping[str, tuple[str, int]] | None = None,
) -> dict[str, Any]:
    """The declarative configuration.

    Args:
        signing_keys: (kid, public PEM) pairs: the token consumer's ``jwt_secrets``.
        upstream_cas: PEM certificates Kong trusts for the service's certificate, one entity each; the root
            must be among them (see ``kong_config --upstream-ca``).
        targets: colour -> (``host:port``, weight) of the upstream's targets (default: :func:`default_targets`).
    """
    scheme = urlsplit(settings.KONG_UPSTREAM_URL).scheme
    service: dict[str, Any] = {"name": SERVICE, "url": f"{scheme}://{UPSTREAM}", "tls_verify": True}
    if upstream_cas:
        # tls_verify without a trust store fails every handshake (kong/pdk/service.lua@3.9.1:253-256,
        # kong/runloop/upstream_ssl.lua@3.9.1:65-72 sets one only from ca_certificates).
        service["ca_certificates"] = [ca_certificate_id(pem) for pem in upstream_cas]
    service |= {
        "client_certificate": {"id": settings.KONG_CLIENT_CERTIFICATE_ID},
        "retries": 0,
        "connect_timeout": 5000,
        "read_timeout": 60000,
        "write_timeout": 60000,
        "routes": _routes(),
        "plugins": [
            _rate_limiting(),
            _size_limit(),
            {"name": "pre-function", "config": {"access": [_DROP_CLIENT_HEADERS]}},
            {"name": "post-function", "config": {"access": [_SIGNER]}},
        ],
    }
    config: dict[str, Any] = {
        "_format_version": "3.0",
        "_transform": True,
        "upstreams": [_upstream(targets if targets is not None else default_targets())],
        "services": [service],
        "certificates": [
            {
                "id": settings.KONG_CLIENT_CERTIFICATE_ID,
                "cert": "{vault://env/kong-upstream-client-cert}",
                "key": "{vault://env/kong-upstream-client-key}",
            }
        ],
    }
    if upstream_cas:
        # ca_certificates.cert is not referenceable in 3.9 (kong/db/schema/entities/ca_certificates.lua@3.9.1:20):
        # the PEM is inline. It is public.
        config["ca_certificates"] = [{"id": ca_certificate_id(pem), "cert": pem} for pem in upstream_cas]
    # No consumer-level rate limit: Kong applies one rate-limiting instance per request and a
    # consumer's would replace the per-IP one; and the one consumer is the token issuer, not a
    # user. The per-user hourly limit is the service's (security/identity/throttle.py: check_user).
    consumer: dict[str, Any] = {"username": CONSUMER}
    if signing_keys:
        consumer["jwt_secrets"] = [
            {"key": kid, "algorithm": "EdDSA", "rsa_public_key": pem} for kid, pem in signing_keys
        ]
    config["consumers"] = [consumer]
    return config


def route_matches(config: dict[str, Any], path: str) -> bool:
    """Whether some Kong route of ``config`` takes ``path`` (regex paths, as Kong reads them)."""
    for service in config["services"]:
        for route in service["routes"]:
            for kong in route["paths"]:
                if kong.startswith("~") and re.fullmatch(kong[1:].rstrip("$"), path):
                    return True
                if not kong.startswith("~") and path.startswith(kong):
                    return True
    return False


def sample_path(route: Route) -> str:
    """A concrete path for a Django route (converters filled with valid values)."""
    filled = {"uuid": "123e4567-e89b-12d3-a456-426614174000", "int": "7", "slug": "x", "str": "x", "path": "x/y"}
    path = route.path
    for converter, value in filled.items():
        path = re.sub(rf"<{converter}:\w+>", value, path)
    return "/" + re.sub(r"<\w+>", "x", path)


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (the pre-function's Lua reads as code)."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)

HEADER = "# Generated by `python manage.py kong_config`: do not edit; a test compares it with the generator.\n"
NOT_DEPLOYABLE = (
    "# Not deployable as is: it has no token keys and no CA for the service's certificate (tls_verify would fail\n"
    "# every request). Deploy `python manage.py kong_config --with-keys --upstream-ca <ca.pem> --out <file>`.\n"
)


def render(config: dict[str, Any]) -> str:
    """The configuration as decK YAML; one without a CA for the service says it is not to be deployed."""
    deployable = bool(config["services"][0].get("ca_certificates"))
    header = HEADER if deployable else HEADER + NOT_DEPLOYABLE
    return header + yaml.dump(config, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def missing_kong_routes(config: dict[str, Any], urlconf: str) -> list[str]:
    """``/api/v1`` routes of ``urlconf`` that no Kong route of ``config`` takes."""
    return [
        route.path
        for route in walk(urlconf)
        if route.path.startswith("api/v1/") and not route_matches(config, sample_path(route))
    ]
