"""The client's address as the service can prove it."""

from __future__ import annotations

import ipaddress

from django.http import HttpRequest

from gateway.proxy import CLIENT_HEADER, normalised_ip

IPV6_PREFIX = 64


def client_ip(request: HttpRequest) -> str:
    """The peer address; behind a proven gateway, the address Kong saw (signed with the request)."""
    address = str(request.META.get("REMOTE_ADDR") or "")
    if getattr(request, "via_gateway", False):
        address = str(request.META.get(CLIENT_HEADER) or address)
    ip = normalised_ip(address)
    return "unknown" if ip is None else str(ip)


def client_bucket(request: HttpRequest) -> str:
    """What limits count by: the address, or its /64 for IPv6 (one subscriber's usual allocation)."""
    address = client_ip(request)
    ip = normalised_ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False))
    return address
