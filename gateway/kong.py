"""Kong 3.9 (open source, DB-less) declarative configuration, generated from the URLconf.

The committed ``deploy/kong/kong.yml`` is exactly what :func:`kong_config`
returns for the repository's settings (a test checks it), so every
``/api/v1`` route has a Kong route and nothing else does. The token-verifying
public keys are deployment state, not repository state: ``kong_config
--with-keys`` adds the consumer and its ``jwt_secrets`` from the current JWKS
at deploy time.

What Kong enforces here is a first line only; the service enforces all of it
again (Kong's jwt plugin checks no audience, its rate limiter is set to fail
closed here but cannot see users, and forwarded headers are trusted only with
the signature Kong adds).
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from django.conf import settings

from policy.routes import Route, is_guarded, walk

SERVICE = "compliance-gateway"
CONSUMER = "gateway-token-issuer"
_CONVERTERS = {
    "uuid": "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "int": "[0-9]+",
    "slug": "[-a-zA-Z0-9_]+",
    "str": "[^/]+",
    "path": ".+",
}
# pre-function (access, before correlation-id): a client's own request id is dropped, so the
# correlation-id plugin always mints one.
_DROP_CLIENT_ID = """kong.service.request.clear_header("X-Request-ID")
ngx.req.clear_header("X-Request-ID")
"""
# post-function (access, after correlation-id): sign what the service needs to trust this hop:
# time, method, the raw path with its query, the request id, and the address Kong saw.
_SIGNER = """local hmac = require "resty.openssl.hmac"
local secret = kong.vault.get("{vault://env/kong-gateway-proxy-secret}")
local now = tostring(ngx.time())
local id = kong.request.get_header("X-Request-ID") or ""
local client = kong.client.get_forwarded_ip()
local message = table.concat({ now, kong.request.get_method(), kong.request.get_path_with_query(), id, client }, "\\n")
local digest = hmac.new(secret, "sha256"):final(message)
kong.service.request.set_header("X-Gateway-Client", client)
kong.service.request.set_header("X-Gateway-Signature", "t=" .. now .. ",sig=" .. ngx.encode_base64(digest))
"""
BODY_METHODS = {"POST", "PUT", "PATCH"}


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


def _methods(route: Route) -> list[str]:
    view_class = getattr(route.view, "view_class", None) or getattr(route.view, "cls", None)
    if view_class is None:
        return ["GET"]
    return sorted(method.upper() for method in ("get", "post", "put", "patch", "delete") if hasattr(view_class, method))


def _jwt_plugin() -> dict[str, Any]:
    return {
        "name": "jwt",
        "config": {
            "uri_param_names": [],
            "cookie_names": [],
            "header_names": ["authorization"],
            "key_claim_name": "kid",
            "claims_to_verify": ["exp", "nbf"],
            "maximum_expiration": int(settings.ACCESS_TOKEN_TTL_SECONDS),
            "run_on_preflight": False,
        },
    }


def _community_route(route: Route) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": route.name,
        "hosts": [f"*.{settings.KONG_COMMUNITY_DOMAIN_SUFFIX}"],
        "paths": [kong_path(route)],
        "methods": _methods(route),
        "protocols": ["https"],
        "https_redirect_status_code": 426,
        "strip_path": False,
        "preserve_host": True,
    }
    plugins = []
    if is_guarded(route.view):
        plugins.append(_jwt_plugin())
    if BODY_METHODS & set(entry["methods"]):
        # Per route: with no body, a Content-Length must not be required (a GET would get 411).
        plugins.append(
            {
                "name": "request-size-limiting",
                "config": {
                    "allowed_payload_size": max(1, int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) // 1_048_576),
                    "size_unit": "megabytes",
                    "require_content_length": True,
                },
            }
        )
    if plugins:
        entry["plugins"] = plugins
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
        "methods": ["GET"],
        "protocols": ["https"],
        "strip_path": False,
        "preserve_host": True,
    }
    admin = {
        "name": "platform-admin",
        "hosts": list(settings.PUBLIC_HOSTS),
        "paths": ["/admin/"],
        "protocols": ["https"],
        "strip_path": False,
        "preserve_host": True,
        "plugins": [{"name": "ip-restriction", "config": {"allow": list(settings.KONG_ADMIN_ALLOW), "status": 404}}],
    }
    return [*sorted(community, key=lambda entry: entry["name"]), static, admin]


def kong_config(*, signing_keys: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The declarative configuration; ``signing_keys`` (kid, public PEM) adds the token consumer."""
    config: dict[str, Any] = {
        "_format_version": "3.0",
        "_transform": True,
        "services": [
            {
                "name": SERVICE,
                "url": settings.KONG_UPSTREAM_URL,
                "tls_verify": True,
                "client_certificate": {"id": settings.KONG_CLIENT_CERTIFICATE_ID},
                "retries": 0,
                "connect_timeout": 5000,
                "read_timeout": 60000,
                "write_timeout": 60000,
                "routes": _routes(),
                "plugins": [
                    {
                        "name": "rate-limiting",
                        "config": {
                            "minute": int(settings.RATE_LIMIT_PER_IP),
                            "limit_by": "ip",
                            "policy": "redis",
                            "fault_tolerant": False,
                            "redis": {"host": settings.KONG_REDIS_HOST, "port": 6379, "ssl": True, "ssl_verify": True},
                        },
                    },
                    {
                        "name": "correlation-id",
                        "config": {"header_name": "X-Request-ID", "generator": "uuid", "echo_downstream": True},
                    },
                    {"name": "pre-function", "config": {"access": [_DROP_CLIENT_ID]}},
                    {"name": "post-function", "config": {"access": [_SIGNER]}},
                ],
            }
        ],
        "certificates": [
            {
                "id": settings.KONG_CLIENT_CERTIFICATE_ID,
                "cert": "{vault://env/kong-upstream-client-cert}",
                "key": "{vault://env/kong-upstream-client-key}",
            }
        ],
    }
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


def render(config: dict[str, Any]) -> str:
    """The configuration as decK YAML."""
    return HEADER + yaml.dump(config, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def missing_kong_routes(config: dict[str, Any], urlconf: str) -> list[str]:
    """``/api/v1`` routes of ``urlconf`` that no Kong route of ``config`` takes."""
    return [
        route.path
        for route in walk(urlconf)
        if route.path.startswith("api/v1/") and not route_matches(config, sample_path(route))
    ]
