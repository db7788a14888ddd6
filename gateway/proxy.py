"""Proxy trust: forwarded headers count only from a configured proxy that proves itself.

Kong adds ``X-Gateway-Host`` (the client's Host header, port included),
``X-Gateway-Client`` (the address it saw) and ``X-Gateway-Signature:
t=<unix>,sig=<base64 HMAC-SHA256>`` over ``t``, the method, that host, the
target it forwards (path and query as sent upstream), the request id (Kong's
own, in ``X-Request-ID``: a client's is dropped) and that client address,
with a secret it shares with the service (``PROXY_SHARED_SECRET``). A request
is *via the gateway* when it comes from an address in ``TRUSTED_PROXIES``, the
signature checks out, is at most ``PROXY_SIGNATURE_MAX_AGE_SECONDS`` old and
was not seen before (Redis remembers it for the window). Only then is the signed host put back as the
request's Host (Kong sends its upstream's own name, which its TLS check needs),
and ``X-Gateway-Client``, ``X-Request-ID`` and Kong's ``X-Consumer-*`` headers
kept; otherwise all of them are removed before anything reads them, and the
Host stays what the peer sent. ``ALLOWED_HOSTS`` and the community routing
judge the host either way. With ``REQUIRE_GATEWAY`` (production), a request
that did not come through the gateway is refused (403), health probes
excepted; when Redis cannot tell a replay, the answer is 503.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import time
from collections.abc import Callable
from functools import lru_cache

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core.comparison import ascii_equal, is_ascii_digits
from core.errors import ServiceUnavailable
from core.http import CLIENT_HEADER, HEALTH_PREFIX, edge_of, edge_set, normalised_ip
from core.problems import application_error_response, problem_response
from core.redis import get_redis
from gateway.errors import GatewayErrorCode

SIGNATURE_HEADER = "HTTP_X_GATEWAY_SIGNATURE"
HOST_HEADER = "HTTP_X_GATEWAY_HOST"
_FORWARDED = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_REAL_IP",
    "HTTP_X_REQUEST_ID",
    "HTTP_X_CREDENTIAL_IDENTIFIER",
    "HTTP_X_ANONYMOUS_CONSUMER",
    SIGNATURE_HEADER,
    HOST_HEADER,
    CLIENT_HEADER,
)


class ReplayCheckUnavailable(ServiceUnavailable):
    """Redis cannot say whether a signature was seen before: nothing is trusted; the gateway path is 503."""

    def __init__(self) -> None:
        super().__init__(
            "The gateway's signature cannot be checked right now.", code=GatewayErrorCode.PROXY_CHECK_UNAVAILABLE
        )


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def is_trusted_proxy(address: str) -> bool:
    """Whether ``address`` is one of the configured proxies."""
    ip = normalised_ip(address)
    return ip is not None and any(ip in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def sign(*, secret: str, timestamp: int, method: str, host: str, path: str, request_id: str, client: str) -> str:
    """The header value a proxy sends (what Kong's post-function computes).

    The message is the bytes as they crossed the wire: WSGI hands header and
    target strings over decoded as Latin-1 (PEP 3333), so they are encoded back
    the same way. A character no wire byte decodes to (an upper-cased method,
    say) cannot match what Kong signed: it becomes ``?`` rather than an error.
    """
    message = f"{timestamp}\n{method}\n{host}\n{path}\n{request_id}\n{client}".encode("latin-1", "replace")
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return f"t={timestamp},sig={base64.b64encode(digest).decode()}"


def _path_with_query(request: HttpRequest) -> str:
    """The target as it arrived (gunicorn's RAW_URI): what Kong forwarded, and signed."""
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if raw:
        return str(raw)
    query = request.META.get("QUERY_STRING", "")
    return str(request.META.get("PATH_INFO", request.path)) + (f"?{query}" if query else "")


def proven_by_gateway(request: HttpRequest) -> bool:
    """The check above. Raises ReplayCheckUnavailable when Redis cannot rule out a replay."""
    secret = settings.PROXY_SHARED_SECRET
    header = str(request.META.get(SIGNATURE_HEADER, ""))
    if not secret or not header or not is_trusted_proxy(str(request.META.get("REMOTE_ADDR", ""))):
        return False
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    stamp = fields.get("t", "")
    if not is_ascii_digits(stamp):
        return False
    if abs(time.time() - int(stamp)) > settings.PROXY_SIGNATURE_MAX_AGE_SECONDS:
        return False
    expected = sign(
        secret=secret,
        timestamp=int(stamp),
        method=request.method or "",
        host=str(request.META.get(HOST_HEADER, "")),
        path=_path_with_query(request),
        request_id=str(request.META.get("HTTP_X_REQUEST_ID", "")),
        client=str(request.META.get(CLIENT_HEADER, "")),
    )
    if not ascii_equal(expected, f"t={stamp},sig={fields.get('sig', '')}"):  # a header may carry Latin-1
        return False
    window = 2 * settings.PROXY_SIGNATURE_MAX_AGE_SECONDS
    try:  # a signature is good once: a captured request cannot be replayed
        return bool(get_redis().set(f"proxy-signature:{fields['sig']}", "1", nx=True, ex=window))
    except redis.RedisError as error:
        raise ReplayCheckUnavailable from error


def _restore_host(request: HttpRequest) -> None:
    """The client's host, signed by Kong, becomes the request's Host (Django still checks ALLOWED_HOSTS)."""
    host = str(request.META.pop(HOST_HEADER, ""))
    if host:
        request.META["HTTP_HOST"] = host


class ProxyTrustMiddleware:
    """Keep forwarded headers only from a proven gateway; strip them from everyone else."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Decide and strip; a refusal (if any) comes after the request id is assigned."""
        trouble: ReplayCheckUnavailable | None = None
        try:
            via_gateway = proven_by_gateway(request)
        except ReplayCheckUnavailable as error:
            via_gateway, trouble = False, error
        edge = edge_of(request)
        edge.via_gateway, edge.trouble = via_gateway, trouble
        edge_set(request, edge)
        if via_gateway:
            _restore_host(request)
        else:
            for name in [*_FORWARDED, *(key for key in request.META if key.startswith("HTTP_X_CONSUMER_"))]:
                request.META.pop(name, None)
        return self.get_response(request)


class GatewayRequiredMiddleware:
    """With ``REQUIRE_GATEWAY``: 403 for requests that did not come through the gateway (503 when unsure)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Refuse, or pass on."""
        edge = edge_of(request)
        if not settings.REQUIRE_GATEWAY or edge.via_gateway or request.path.startswith(HEALTH_PREFIX):
            return self.get_response(request)
        if edge.trouble is not None:
            return application_error_response(request, edge.trouble)
        return problem_response(
            request,
            status=403,
            code=GatewayErrorCode.GATEWAY_REQUIRED,
            detail="Requests reach this service through its gateway.",
        )
