"""RFC 9457 problem details: the one shape every error response takes.

:func:`problem_exception_handler` is DRF's exception handler; the ``handler*``
views cover what happens outside DRF (unknown routes, middleware refusals,
crashes). No response built here ever carries a stack trace, a secret or PHI:
unexpected exceptions are logged by type and request id only.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from gateway.errors import ApplicationError

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:compliance-gateway:problem:"
BEARER_CHALLENGE = 'Bearer realm="api"'

# DRF messages for these codes repeat what the client sent, which may be PHI.
_ECHOING_VALIDATION_CODES = {
    "invalid_choice": "Not one of the allowed values.",
    "does_not_exist": "No such object.",
    "invalid_pk_value": "No such object.",
}

_DRF_CODES: dict[type[drf_exceptions.APIException], tuple[str, str]] = {
    drf_exceptions.ParseError: ("malformed_request", "The request body is not valid JSON."),
    drf_exceptions.UnsupportedMediaType: ("unsupported_media_type", "Send the body as application/json."),
    drf_exceptions.NotAuthenticated: ("authentication_required", "This endpoint needs a bearer access token."),
    drf_exceptions.AuthenticationFailed: ("invalid_token", "The credentials were not accepted."),
    drf_exceptions.PermissionDenied: ("forbidden", "You may not do this."),
    drf_exceptions.NotFound: ("not_found", "Nothing was found here."),
    drf_exceptions.MethodNotAllowed: ("method_not_allowed", "This method is not allowed here."),
    drf_exceptions.NotAcceptable: ("not_acceptable", "This endpoint answers in application/json only."),
    drf_exceptions.Throttled: ("rate_limited", "Too many requests; wait before trying again."),
}

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    410: "Gone",
    413: "Content too large",
    415: "Unsupported media type",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def problem_document(
    request: HttpRequest | None,
    *,
    status: int,
    code: str,
    detail: str,
    title: str | None = None,
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build an RFC 9457 problem document with our ``code`` and ``request_id`` members."""
    document: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if request is not None:
        document["instance"] = request.path
        document["request_id"] = getattr(request, "request_id", None)
    document.update(extensions or {})
    return document


def problem_response(
    request: HttpRequest | None,
    *,
    status: int,
    code: str,
    detail: str,
    title: str | None = None,
    extensions: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    """Render a problem document as a plain Django response (middleware and non-DRF views)."""
    document = problem_document(request, status=status, code=code, detail=detail, title=title, extensions=extensions)
    return JsonResponse(
        document, status=status, content_type=PROBLEM_CONTENT_TYPE, headers=_problem_headers(status, headers)
    )


def _problem_headers(status: int, headers: dict[str, str] | None) -> dict[str, str]:
    """Headers every problem response carries: never cached; 401 says how to authenticate."""
    merged = dict(headers or {})
    if status == 401:  # noqa: PLR2004 - HTTP status
        merged.setdefault("WWW-Authenticate", BEARER_CHALLENGE)
    merged["Cache-Control"] = "no-store"
    return merged


def application_error_response(request: HttpRequest | None, error: ApplicationError) -> JsonResponse:
    """Render an :class:`ApplicationError` for a non-DRF caller."""
    return problem_response(
        request,
        status=error.status,
        code=error.code,
        detail=error.detail,
        title=error.title,
        extensions=error.extensions,
        headers=error.headers,
    )


def _field_errors(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """Flatten DRF's nested validation detail into ``[{field, code, message}]``."""
    if isinstance(detail, dict):
        errors: list[dict[str, str]] = []
        for name, value in detail.items():
            field = f"{prefix}.{name}" if prefix else str(name)
            errors.extend(_field_errors(value, field))
        return errors
    if isinstance(detail, list):
        return [error for item in detail for error in _field_errors(item, prefix)]
    code = getattr(detail, "code", "invalid") or "invalid"
    message = _ECHOING_VALIDATION_CODES.get(code, str(detail))
    return [{"field": prefix or "non_field_errors", "code": str(code), "message": message}]


def _drf_problem(exc: drf_exceptions.APIException) -> tuple[str, str, dict[str, Any]]:
    """Map a DRF exception to (code, detail, extensions)."""
    if isinstance(exc, drf_exceptions.ValidationError):
        return "validation_failed", "The request has invalid fields.", {"errors": _field_errors(exc.detail)}
    for exception_class, (code, detail) in _DRF_CODES.items():
        if isinstance(exc, exception_class):
            return code, detail, {}
    return "error", "The request could not be processed.", {}


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF exception handler: every error becomes a problem document, never a stack trace."""
    request = context.get("request")
    if isinstance(exc, ApplicationError):
        document = problem_document(
            request, status=exc.status, code=exc.code, detail=exc.detail, title=exc.title, extensions=exc.extensions
        )
        return _drf_response(document, exc.status, exc.headers)
    if isinstance(exc, RequestDataTooBig):
        return _drf_response(_too_large(request), 413, {})
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, drf_exceptions.APIException):
        code, detail, extensions = _drf_problem(exc)
        headers: dict[str, str] = {}
        wait = getattr(exc, "wait", None)
        if isinstance(exc, drf_exceptions.Throttled) and wait is not None:
            headers["Retry-After"] = str(int(wait) + 1)
        document = problem_document(request, status=exc.status_code, code=code, detail=detail, extensions=extensions)
        return _drf_response(document, exc.status_code, headers)
    log_unexpected(exc, request)
    document = problem_document(request, status=500, code="internal_error", detail="An unexpected error occurred.")
    return _drf_response(document, 500, {})


def _drf_response(document: dict[str, Any], status: int, headers: dict[str, str]) -> Response:
    return Response(
        document, status=status, content_type=PROBLEM_CONTENT_TYPE, headers=_problem_headers(status, headers)
    )


def log_unexpected(exc: BaseException, request: HttpRequest | None) -> None:
    """Log an unexpected exception by type and frames only: its message may hold PHI."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    logger.error(
        "unhandled %s (request_id=%s)\n%s",
        type(exc).__name__,
        getattr(request, "request_id", None),
        frames,
    )


def _too_large(request: HttpRequest | None) -> dict[str, Any]:
    return problem_document(request, status=413, code="payload_too_large", detail="The request body is too large.")


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django-level 400 (a Host header outside ALLOWED_HOSTS, a body over the size limit)."""
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(
            _too_large(request), status=413, content_type=PROBLEM_CONTENT_TYPE, headers=_problem_headers(413, None)
        )
    return problem_response(request, status=400, code="bad_request", detail="The request could not be understood.")


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django-level 403 (for example a CSRF failure on the admin)."""
    return problem_response(request, status=403, code="forbidden", detail="You may not do this.")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Unknown route: a problem document, the same for every host."""
    return problem_response(request, status=404, code="not_found", detail="Nothing was found here.")


def handler500(request: HttpRequest) -> HttpResponse:
    """A crash outside DRF: generic problem, details only in the log (by type)."""
    return problem_response(request, status=500, code="internal_error", detail="An unexpected error occurred.")
