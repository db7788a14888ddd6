"""Serving a double's request handler on a free loopback port, for the length of a ``with`` block."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@contextmanager
def serving(
    handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> Iterator[str]:
    """Start ``handler`` on ``host`` (a port the system picks), over TLS with ``tls``; yield its base URL.

    ``host`` may be the IPv6 loopback ``::1``; the URL then names it in brackets.
    """
    server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
    server = server_class((host, 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    # shutdown() waits up to one poll interval: the default half second, at every test's end, adds up.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        name = f"[{host}]" if ":" in host else host
        yield f"{'https' if tls else 'http'}://{name}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
