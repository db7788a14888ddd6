"""The client's address as the service can prove it."""

from __future__ import annotations

from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """Return the peer address of the connection.

    Forwarded headers are ignored: only a proxy that proves itself may set the
    client address, and that proof belongs to the edge (proxy trust).
    """
    return str(request.META.get("REMOTE_ADDR") or "unknown")
