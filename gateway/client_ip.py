"""The client's address as the service can prove it."""

from __future__ import annotations

from django.http import HttpRequest

from gateway.proxy import is_trusted_proxy


def client_ip(request: HttpRequest) -> str:
    """The peer address; behind a proven gateway, the nearest untrusted hop of ``X-Forwarded-For``."""
    peer = str(request.META.get("REMOTE_ADDR") or "unknown")
    if not getattr(request, "via_gateway", False):
        return peer
    hops = [hop.strip() for hop in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted_proxy(hop):
            return hop
    return peer
