"""gunicorn's gevent worker, answering what gunicorn itself refuses as an RFC 9457 problem document.

gunicorn refuses a request it will not parse before Django sees it: a request
line longer than ``limit_request_line``, too many or too large header fields,
a request line, method, version, header or chunk that is not HTTP/1.1, an
unknown transfer coding. Its own answer (``Worker.handle_error``, ``util.write_error``)
is an HTML page that quotes what it refused (``Invalid Request Line 'GET
/?mrn=...'``), and its log line quotes it too: the request's bytes may hold PHI
or a token. :class:`ProblemGeventWorker` answers each with the status gunicorn
chose (414, 431, 400, 417, 501; 500 for what is not the client's fault), a
problem document with a stable ``code`` and a fixed ``detail`` (the members
:mod:`core.rfc9457` makes, and a fresh ``request_id``, also sent as
``X-Request-ID`` and logged), and logs the kind of refusal, never its bytes.

Imported by gunicorn's arbiter (``worker_class`` in ``config/gunicorn.py``),
before the worker patches the standard library with gevent: it imports gunicorn,
the standard library and the kernel modules that import nothing (no Django).
"""

from __future__ import annotations

import json
import socket
import ssl
import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gunicorn import util  # type: ignore[import-untyped]  # gunicorn ships no type hints
from gunicorn.http import errors  # type: ignore[import-untyped]  # nor here
from gunicorn.http.message import Request  # type: ignore[import-untyped]  # nor here
from gunicorn.http.wsgi import Response, default_environ  # type: ignore[import-untyped]  # nor here
from gunicorn.workers.ggevent import GeventWorker  # type: ignore[import-untyped]  # nor here

from core.errors import ErrorCode
from core.limits import HEADER_FIELD_MAX_BYTES, HEADER_FIELDS_MAX, REQUEST_LINE_MAX_BYTES
from core.rfc9457 import PROBLEM_CONTENT_TYPE, problem_members


@dataclass(frozen=True)
class Refusal:
    """How one kind of refused request is answered.

    Attributes:
        status: The HTTP status (gunicorn's own choice for the error).
        reason: The status line's reason phrase.
        code: The problem document's ``code``.
        detail: The fixed sentence of the document: never anything of the request.
    """

    status: int
    reason: str
    code: ErrorCode
    detail: str


REQUEST_LINE_TOO_LONG = Refusal(
    414,
    "URI Too Long",
    ErrorCode.REQUEST_LINE_TOO_LONG,
    f"The request line is longer than {REQUEST_LINE_MAX_BYTES} bytes.",
)
HEADER_FIELDS_TOO_LARGE = Refusal(
    431,
    "Request Header Fields Too Large",
    ErrorCode.HEADER_FIELDS_TOO_LARGE,
    f"Send at most {HEADER_FIELDS_MAX} header fields, each line at most {HEADER_FIELD_MAX_BYTES} bytes.",
)
MALFORMED = Refusal(
    400, "Bad Request", ErrorCode.MALFORMED_HTTP_REQUEST, "The request is not HTTP/1.1 this server can read."
)
INTERNAL = Refusal(500, "Internal Server Error", ErrorCode.INTERNAL_ERROR, "An unexpected error occurred.")

# First match wins: the response-header errors subclass request-header ones and are the application's fault.
_REFUSALS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], Refusal], ...] = (
    ((errors.InvalidResponseHeader, errors.InvalidResponseHeaderName, errors.ConfigurationProblem), INTERNAL),
    (errors.LimitRequestLine, REQUEST_LINE_TOO_LONG),
    (errors.LimitRequestHeaders, HEADER_FIELDS_TOO_LARGE),
    (
        errors.ExpectationFailed,
        Refusal(417, "Expectation Failed", ErrorCode.EXPECTATION_FAILED, "Only Expect: 100-continue is supported."),
    ),
    (
        errors.UnsupportedTransferCoding,
        Refusal(
            501,
            "Not Implemented",
            ErrorCode.UNSUPPORTED_TRANSFER_CODING,
            "Only the chunked transfer coding is supported.",
        ),
    ),
    (
        (errors.ForbiddenProxyRequest, ssl.SSLError),
        Refusal(403, "Forbidden", ErrorCode.FORBIDDEN, "This connection may not make requests here."),
    ),
    (errors.ParseException, MALFORMED),
)


def refusal_for(error: BaseException) -> Refusal:
    """How gunicorn's refusal of a request with ``error`` is answered (500 for what is not a parse error)."""
    for kinds, refusal in _REFUSALS:
        if isinstance(error, kinds):
            return refusal
    return INTERNAL


def response_bytes(refusal: Refusal, request_id: str) -> bytes:
    """The whole HTTP/1.1 response: status line, headers (the connection closes) and the problem document."""
    document = {
        **problem_members(status=refusal.status, code=refusal.code, detail=refusal.detail),
        "request_id": request_id,
    }
    body = json.dumps(document, separators=(",", ":")).encode("ascii")
    head = (
        f"HTTP/1.1 {refusal.status} {refusal.reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"X-Request-ID: {request_id}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


class ProblemGeventWorker(GeventWorker):  # type: ignore[misc]  # gunicorn's classes are untyped
    """gunicorn's gevent worker whose own refusals are problem documents, logged without the request's bytes."""

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        """Answer the request gunicorn could not serve (``req`` is None when not even its request line was read)."""
        started = datetime.now()  # noqa: DTZ005 - gunicorn's access log measures durations in naive local time
        refusal = refusal_for(exc)
        request_id = uuid.uuid4().hex
        peer = addr[0] if isinstance(addr, tuple) and addr else ""
        if refusal is INTERNAL:
            frames = "".join(traceback.format_tb(exc.__traceback__))
            self.log.error("error handling a request: %s (request_id=%s)\n%s", type(exc).__name__, request_id, frames)
        else:
            self.log.warning(
                "refused a request from %s: %s, %s (request_id=%s)", peer, refusal.code, type(exc).__name__, request_id
            )
        try:
            util.write_nonblock(client, response_bytes(refusal, request_id))
        except Exception:  # noqa: BLE001 - the client may be gone; nothing else to tell it
            self.log.debug("could not send the refusal (request_id=%s)", request_id)
        # A header error carries the request read so far (as ``req``; other errors keep their line there).
        parsed = req if req is not None else getattr(exc, "req", None)
        if isinstance(parsed, Request):
            try:
                self._access(parsed, client=client, addr=addr, refusal=refusal, request_id=request_id, started=started)
            except Exception:  # noqa: BLE001 - the answer is sent; a half-read request must not make a second one
                self.log.debug("no access line for the refusal (request_id=%s)", request_id)

    def _access(
        self, req: Any, *, client: socket.socket, addr: Any, refusal: Refusal, request_id: str, started: datetime
    ) -> None:
        """The access log line gunicorn writes for a refusal of a request it read (its environ names no path)."""
        environ = default_environ(req, client, self.cfg)
        peer = addr if isinstance(addr, tuple) and len(addr) > 1 else ("", -1)
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = peer[0], str(peer[1])
        response = Response(req, client, self.cfg)
        response.status = f"{refusal.status} {refusal.reason}"
        response.headers = [("X-Request-ID", request_id)]
        self.log.access(response, req, environ, datetime.now() - started)  # noqa: DTZ005 - as above
