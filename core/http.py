"""What the edge established about a request, and the client's address as the service can prove it.

The gateway's middleware decides, once per request, its id and whether it came
through the proven gateway (:class:`Edge`); everything deeper (problem
documents, policy input, audit events, rate limits) reads those facts through
:func:`edge_of` instead of ad-hoc request attributes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from django.http import HttpRequest
from rest_framework.request import Request

from core.errors import ServiceUnavailable

# The address Kong saw, kept only from a proven gateway (``gateway.proxy`` strips it otherwise).
CLIENT_HEADER = "HTTP_X_GATEWAY_CLIENT"
# Probes for orchestrators: never limited, never refused for a suspended community or a missing gateway.
HEALTH_PREFIX = "/health/"
IPV6_PREFIX = 64
_ATTRIBUTE = "gateway_edge"


@dataclass
class Edge:
    """The edge's facts about one request.

    Attributes:
        request_id: The id every log line, problem document and audit event of the request carries.
        via_gateway: Whether the request came through the proven gateway (signed, fresh, not replayed).
        trouble: Why the gateway could not be proven, when the reason is a dependency that is down.
    """

    request_id: str | None = None
    via_gateway: bool = False
    trouble: ServiceUnavailable | None = None


def edge_of(request: HttpRequest | Request | None) -> Edge:
    """The edge's facts about ``request``; none established (no id, not via the gateway) when it set nothing."""
    edge = getattr(request, _ATTRIBUTE, None)
    return edge if isinstance(edge, Edge) else Edge()


def edge_set(request: HttpRequest, edge: Edge) -> Edge:
    """Attach the edge's facts to ``request`` (the gateway's middleware, once per request)."""
    setattr(request, _ATTRIBUTE, edge)
    return edge


@lru_cache(maxsize=4096)  # a request asks several times; addresses repeat across requests
def normalised_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address, with IPv4-mapped IPv6 (``::ffff:10.0.0.1``) as plain IPv4; None when not an address."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_ip(request: HttpRequest | Request) -> str:
    """The peer address; behind a proven gateway, the address Kong saw (signed with the request)."""
    address = str(request.META.get("REMOTE_ADDR") or "")
    if edge_of(request).via_gateway:
        address = str(request.META.get(CLIENT_HEADER) or address)
    ip = normalised_ip(address)
    return "unknown" if ip is None else str(ip)


def client_bucket(request: HttpRequest | Request) -> str:
    """What limits count by: the address, or its /64 for IPv6 (one subscriber's usual allocation)."""
    address = client_ip(request)
    ip = normalised_ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False))
    return address
