"""Request pipeline middleware: request ids, 405s, body limits, API response headers and versions."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from functools import cache
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils import timezone
from rest_framework.views import APIView

from core.comparison import is_ascii_digits
from core.contract import ApiContract, Deprecation, lifecycle_headers
from core.errors import ErrorCode
from core.http import edge_of, edge_set
from core.problems import PROBLEM_CONTENT_TYPE, problem_response
from gateway.errors import GatewayErrorCode
from gateway.logging import request_id_var

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{8,64}")


class RequestIdMiddleware:
    """Give every request an id, expose it to logs and echo it as ``X-Request-ID``.

    An id sent along is kept only when the request came through the proven
    gateway (Kong's request id); anyone else's is replaced.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Tag the request, run the rest of the pipeline, echo the id."""
        inbound = str(request.META.get("HTTP_X_REQUEST_ID", ""))
        edge = edge_of(request)
        request_id = inbound if edge.via_gateway and _REQUEST_ID.fullmatch(inbound) else uuid.uuid4().hex
        edge.request_id = request_id
        edge_set(request, edge)
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


METHOD_NOT_ALLOWED_DETAIL = "This method is not allowed here."
_NO_OPTIONS = "gateway_no_options"  # the request's view is a DRF view that answers no OPTIONS


class MethodNotAllowedMiddleware:
    """Every 405 is a problem document with an ``Allow`` header, and ``Allow`` names only methods served.

    DRF's views answer 405 as a problem already (the exception handler); plain
    Django views (the health probes, ``/metrics``, the admin) answer with
    Django's empty ``HttpResponseNotAllowed``, made a problem here, its
    ``Allow`` kept. DRF names ``OPTIONS`` in every ``Allow``, though with no
    metadata class (``DEFAULT_METADATA_CLASS: None``) it answers ``OPTIONS`` 405.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Render a bare 405 as a problem; take ``OPTIONS`` out of a DRF view's ``Allow`` when it serves none."""
        response = self.get_response(request)
        allow = response.get("Allow")
        if allow is not None and getattr(request, _NO_OPTIONS, False):
            allow = ", ".join(method for method in allow.split(", ") if method != "OPTIONS")
            response["Allow"] = allow
        bare = not response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE)
        if response.status_code == HTTPStatus.METHOD_NOT_ALLOWED and bare:
            return problem_response(
                request,
                status=405,
                code=ErrorCode.METHOD_NOT_ALLOWED,
                detail=METHOD_NOT_ALLOWED_DETAIL,
                headers={"Allow": allow} if allow is not None else None,
            )
        return response

    def process_view(self, request: HttpRequest, view_func: Callable[..., Any], *args: Any) -> None:
        """Note whether the view is a DRF view without OPTIONS metadata (its ``Allow`` lists OPTIONS anyway)."""
        view_class = getattr(view_func, "cls", None)
        if isinstance(view_class, type) and issubclass(view_class, APIView):
            setattr(request, _NO_OPTIONS, view_class.metadata_class is None)


BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyLimitMiddleware:
    """Refuse oversized bodies before anything reads them: a declared length over the limit, or no length at all.

    Kong's request-size-limiting is the first line; this one holds without it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """413 for a body the service will not read."""
        if request.method in BODY_METHODS:
            length = request.META.get("CONTENT_LENGTH") or ""
            chunked = "chunked" in str(request.META.get("HTTP_TRANSFER_ENCODING", "")).lower()
            if chunked and not length:
                return problem_response(
                    request,
                    status=413,
                    code=GatewayErrorCode.LENGTH_REQUIRED,
                    detail="Send a Content-Length; chunked bodies are refused.",
                )
            if length and (not is_ascii_digits(length) or int(length) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE):
                return problem_response(
                    request, status=413, code=ErrorCode.PAYLOAD_TOO_LARGE, detail="The request body is too large."
                )
        return self.get_response(request)


class ApiResponseHeadersMiddleware:
    """On every ``/api/`` response: ``Cache-Control: no-store`` (it may carry PHI) and the version headers.

    The version registry (``API_VERSIONS``) says which versions are current,
    deprecated (``Deprecation`` per RFC 9745, ``Sunset`` per RFC 8594 and a
    ``successor-version`` link) or past their sunset (410).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Add the headers (or answer 410 for a version, or an operation, past its sunset)."""
        version = api_version_of(request.path)
        if version is None:
            return self.get_response(request)
        entry = settings.API_VERSIONS.get(version, {})
        deprecation = operation_deprecation(request)
        sunset = entry.get("sunset")
        if sunset is not None and timezone.now() >= sunset:
            response: HttpResponse = problem_response(
                request,
                status=410,
                code=GatewayErrorCode.VERSION_SUNSET,
                detail=f"API {version} was retired; see the Link header.",
            )
        elif deprecation is not None and timezone.now().date() >= deprecation.sunset:
            response = problem_response(
                request,
                status=410,
                code=GatewayErrorCode.OPERATION_SUNSET,
                detail="This operation was retired; see the Link header.",
            )
        else:
            response = self.get_response(request)
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        response["API-Version"] = version
        for name, value in {**version_headers(entry), **(deprecation.headers() if deprecation else {})}.items():
            response[name] = value
        return response


@cache
def _deprecating_views() -> frozenset[type[ApiContract]]:
    """The API views that declare a deprecated method (none: nothing is resolved per request)."""
    found: set[type[ApiContract]] = set()
    pending: list[type[ApiContract]] = [ApiContract]
    while pending:
        view = pending.pop()
        pending.extend(view.__subclasses__())
        if view.deprecations:
            found.add(view)
    return frozenset(found)


def operation_deprecation(request: HttpRequest) -> Deprecation | None:
    """The deprecation the operation asked for declares, if any (the API's routes: the community URLconf)."""
    views: frozenset[type[ApiContract]] = _deprecating_views()
    if not views:
        return None
    try:
        match = resolve(request.path_info, urlconf=settings.ROOT_URLCONF)
    except Resolver404:
        return None
    view = getattr(match.func, "cls", None)
    if view not in views:
        return None
    found: Deprecation | None = view.deprecations.get("GET" if request.method == "HEAD" else str(request.method))
    return found


def api_version_of(path: str) -> str | None:
    """``v1`` for ``/api/v1/...``; None for anything else."""
    parts = path.split("/", 3)
    if len(parts) > 2 and parts[1] == "api" and parts[2][:1] == "v" and parts[2][1:].isdigit():  # noqa: PLR2004
        return parts[2]
    return None


def version_headers(entry: dict[str, Any]) -> dict[str, str]:
    """``Deprecation``, ``Sunset`` and ``Link`` for a deprecated version (nothing for a current one)."""
    return lifecycle_headers(deprecated=entry.get("deprecated"), sunset=entry.get("sunset"),
                             successor=entry.get("successor"))  # fmt: skip
