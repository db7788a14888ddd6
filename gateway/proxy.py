"""Proxy trust: forwarded headers count only from a configured proxy that proves itself.

Kong adds ``X-Gateway-Signature: t=<unix>,sig=<base64 HMAC-SHA256>`` over
``t``, the method, the path with its query and the request id, with a secret
it shares with the service (``PROXY_SHARED_SECRET``). A request is *via the
gateway* when it comes from an address in ``TRUSTED_PROXIES``, the signature
checks out, is at most ``PROXY_SIGNATURE_MAX_AGE_SECONDS`` old and was not seen
before (Redis remembers it for the window). Only then are ``X-Forwarded-For``,
``X-Request-ID`` and Kong's ``X-Consumer-*`` headers kept; otherwise they are
removed before anything reads them. With ``REQUIRE_GATEWAY`` (production),
a request that did not come through the gateway is refused, health probes
excepted.
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

from gateway.problems import problem_response
from gateway.redis_client import get_redis

SIGNATURE_HEADER = "HTTP_X_GATEWAY_SIGNATURE"
_FORWARDED = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_REAL_IP",
    "HTTP_X_REQUEST_ID",
    "HTTP_X_CREDENTIAL_IDENTIFIER",
    "HTTP_X_ANONYMOUS_CONSUMER",
    SIGNATURE_HEADER,
)


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def is_trusted_proxy(address: str) -> bool:
    """Whether ``address`` is one of the configured proxies."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def sign(*, secret: str, timestamp: int, method: str, path: str, request_id: str) -> str:
    """The header value a proxy sends (what Kong's pre-function computes)."""
    message = f"{timestamp}\n{method}\n{path}\n{request_id}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return f"t={timestamp},sig={base64.b64encode(digest).decode()}"


def _path_with_query(request: HttpRequest) -> str:
    query = request.META.get("QUERY_STRING", "")
    return str(request.META.get("PATH_INFO", request.path)) + (f"?{query}" if query else "")


def proven_by_gateway(request: HttpRequest) -> bool:
    """The proxy check above; any doubt (Redis down included) means not proven."""
    secret = settings.PROXY_SHARED_SECRET
    header = str(request.META.get(SIGNATURE_HEADER, ""))
    if not secret or not header or not is_trusted_proxy(str(request.META.get("REMOTE_ADDR", ""))):
        return False
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if (
        not fields.get("t", "").isdigit()
        or abs(time.time() - int(fields["t"])) > settings.PROXY_SIGNATURE_MAX_AGE_SECONDS
    ):
        return False
    expected = sign(
        secret=secret,
        timestamp=int(fields["t"]),
        method=request.method or "",
        path=_path_with_query(request),
        request_id=str(request.META.get("HTTP_X_REQUEST_ID", "")),
    )
    if not hmac.compare_digest(expected, f"t={fields['t']},sig={fields.get('sig', '')}"):
        return False
    try:  # a signature is good once: a captured request cannot be replayed
        return bool(
            get_redis().set(
                f"proxy-signature:{fields['sig']}", "1", nx=True, ex=2 * settings.PROXY_SIGNATURE_MAX_AGE_SECONDS
            )
        )
    except redis.RedisError:
        return False


class ProxyTrustMiddleware:
    """Keep forwarded headers only from a proven gateway; in production, require the gateway."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Decide, strip what is not proven, refuse what must come through the gateway."""
        via_gateway = proven_by_gateway(request)
        request.via_gateway = via_gateway  # type: ignore[attr-defined]  # read by client_ip and request ids
        if not via_gateway:
            for name in [*_FORWARDED, *(key for key in request.META if key.startswith("HTTP_X_CONSUMER_"))]:
                request.META.pop(name, None)
            if settings.REQUIRE_GATEWAY and not request.path.startswith("/health/"):
                return problem_response(
                    request,
                    status=403,
                    code="gateway_required",
                    detail="Requests reach this service through its gateway.",
                )
        return self.get_response(request)
