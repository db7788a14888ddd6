"""Request pipeline middleware: a request id for every request, echoed in the response."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from gateway.logging import request_id_var

REQUEST_ID_HEADER = "X-Request-ID"


class RequestIdMiddleware:
    """Give every request an id, expose it to logs and echo it as ``X-Request-ID``.

    Ids sent by clients are not trusted here; the edge issue adds proxies that
    may pass theirs after proving who they are.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Tag the request, run the rest of the pipeline, echo the id."""
        request_id = uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]  # our request attribute
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response
