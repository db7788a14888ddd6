"""The edge's error rendering: DRF's exception handler and Django's ``handler*`` views.

:func:`problem_exception_handler` turns every exception a DRF view raises into
an RFC 9457 document (:mod:`core.problems` builds it); the ``handler*`` views
cover what happens outside DRF (unknown routes, a Host outside
``ALLOWED_HOSTS``, crashes). Unexpected exceptions are logged by type, frames
and request id only: their messages may hold PHI.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import exceptions as drf_exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import MISSING_DETAIL, ApplicationError, ErrorCode
from core.http import edge_of
from core.limits import QUERY_PARAMETERS_MAX
from core.problems import PROBLEM_CONTENT_TYPE, problem_document, problem_headers, problem_response
from gateway.errors import GatewayErrorCode

logger = logging.getLogger(__name__)

# DRF messages for these codes repeat what the client sent, which may be PHI.
_ECHOING_VALIDATION_CODES = {
    "invalid_choice": "Not one of the allowed values.",
    "does_not_exist": "No such object.",
    "invalid_pk_value": "No such object.",
}

_DRF_CODES: dict[type[drf_exceptions.APIException], tuple[ErrorCode, str]] = {
    drf_exceptions.ParseError: (ErrorCode.MALFORMED_REQUEST, "The request body is not valid JSON."),
    drf_exceptions.UnsupportedMediaType: (ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Send the body as application/json."),
    drf_exceptions.NotAuthenticated: (ErrorCode.AUTHENTICATION_REQUIRED, "This endpoint needs a bearer access token."),
    drf_exceptions.AuthenticationFailed: (ErrorCode.INVALID_TOKEN, "The credentials were not accepted."),
    drf_exceptions.PermissionDenied: (ErrorCode.FORBIDDEN, "You may not do this."),
    drf_exceptions.NotFound: (ErrorCode.NOT_FOUND, MISSING_DETAIL),
    drf_exceptions.MethodNotAllowed: (ErrorCode.METHOD_NOT_ALLOWED, "This method is not allowed here."),
    drf_exceptions.NotAcceptable: (ErrorCode.NOT_ACCEPTABLE, "This endpoint answers in application/json only."),
    drf_exceptions.Throttled: (ErrorCode.RATE_LIMITED, "Too many requests; wait before trying again."),
}


# A backing service that cannot be reached (PostgreSQL, Redis) is a 503 to retry, not a crash of the service.
_BACKING_SERVICE_DOWN = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError)
UNAVAILABLE_DETAIL = "A service the gateway depends on is unavailable; try again shortly."
RETRY_AFTER_SECONDS = "5"


TOO_MANY_PARAMETERS_DETAIL = f"Send at most {QUERY_PARAMETERS_MAX} query parameters (or form fields)."


class ProblemResponse(Response):
    """A DRF response that is JSON whatever renderer the view negotiated: every problem document is.

    The schema view renders YAML and the docs page HTML; their 405 or 406 would
    otherwise be a YAML body, or the docs page's "405 Method Not Allowed",
    under an ``application/problem+json`` Content-Type.
    """

    @property
    def rendered_content(self) -> Any:
        """The document as JSON."""
        self.accepted_renderer = JSONRenderer()
        self.accepted_media_type = PROBLEM_CONTENT_TYPE
        return super().rendered_content


def _unavailable_document(request: HttpRequest | Request | None, exc: BaseException) -> dict[str, Any]:
    """Log the failure by type (its message may name a host or hold a statement) and describe the 503."""
    logger.warning("backing service unavailable: %s (request_id=%s)", type(exc).__name__, edge_of(request).request_id)
    return problem_document(
        request, status=503, code=GatewayErrorCode.DEPENDENCIES_UNAVAILABLE, detail=UNAVAILABLE_DETAIL
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


def _drf_problem(exc: drf_exceptions.APIException) -> tuple[ErrorCode, str, dict[str, Any]]:
    """Map a DRF exception to (code, detail, extensions)."""
    if isinstance(exc, drf_exceptions.ValidationError):
        return ErrorCode.VALIDATION_FAILED, "The request has invalid fields.", {"errors": _field_errors(exc.detail)}
    for exception_class, (code, detail) in _DRF_CODES.items():
        if isinstance(exc, exception_class):
            return code, detail, {}
    return ErrorCode.ERROR, "The request could not be processed.", {}


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
    if isinstance(exc, SuspiciousOperation):  # Django's own refusals a DRF view meets (its query string, first)
        return _drf_response(_suspicious(request, exc), 400, {})
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
    if isinstance(exc, _BACKING_SERVICE_DOWN):
        return _drf_response(_unavailable_document(request, exc), 503, {"Retry-After": RETRY_AFTER_SECONDS})
    log_unexpected(exc, request)
    document = problem_document(
        request, status=500, code=ErrorCode.INTERNAL_ERROR, detail="An unexpected error occurred."
    )
    return _drf_response(document, 500, {})


def _drf_response(document: dict[str, Any], status: int, headers: dict[str, str]) -> Response:
    return ProblemResponse(
        document, status=status, content_type=PROBLEM_CONTENT_TYPE, headers=problem_headers(status, headers)
    )


def log_unexpected(exc: BaseException, request: HttpRequest | Request | None) -> None:
    """Log an unexpected exception by type and frames only: its message may hold PHI."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    logger.error(
        "unhandled %s (request_id=%s)\n%s",
        type(exc).__name__,
        edge_of(request).request_id,
        frames,
    )


def _too_large(request: HttpRequest | Request | None) -> dict[str, Any]:
    return problem_document(
        request, status=413, code=ErrorCode.PAYLOAD_TOO_LARGE, detail="The request body is too large."
    )


def _suspicious(request: HttpRequest | Request | None, exc: BaseException) -> dict[str, Any]:
    """Django's refusal of a request it will not read (its message names a setting, never the request)."""
    if isinstance(exc, TooManyFieldsSent):
        return problem_document(
            request, status=400, code=ErrorCode.TOO_MANY_PARAMETERS, detail=TOO_MANY_PARAMETERS_DETAIL
        )
    return problem_document(
        request, status=400, code=ErrorCode.BAD_REQUEST, detail="The request could not be understood."
    )


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django-level 400: a Host outside ALLOWED_HOSTS, a body over the size limit, too many parameters."""
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(
            _too_large(request), status=413, content_type=PROBLEM_CONTENT_TYPE, headers=problem_headers(413, None)
        )
    return JsonResponse(
        _suspicious(request, exception or SuspiciousOperation()),
        status=400,
        content_type=PROBLEM_CONTENT_TYPE,
        headers=problem_headers(400, None),
    )


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django-level 403 (a ``PermissionDenied`` outside DRF)."""
    return problem_response(request, status=403, code=ErrorCode.FORBIDDEN, detail="You may not do this.")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: a form posted to the admin without its CSRF token or from another origin (403).

    Only plain Django views check CSRF (DRF's are exempt: they take bearer tokens, never cookies).
    """
    return problem_response(
        request,
        status=403,
        code=GatewayErrorCode.CSRF_FAILED,
        detail="The form's CSRF check failed: reload the page and send it again.",
    )


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Unknown route: a problem document, the same for every host."""
    return problem_response(request, status=404, code=ErrorCode.NOT_FOUND, detail=MISSING_DETAIL)


def handler500(request: HttpRequest) -> HttpResponse:
    """A crash outside DRF: generic problem, details only in the log (by type).

    Django calls this while it handles the exception (a middleware's or a plain view's), so the exception is
    still the current one: a backing service that is down (the database as a greenlet first connects, Redis
    for the community lookup) is answered 503 with ``Retry-After``, as a DRF view would answer it.
    """
    current = sys.exc_info()[1]
    if isinstance(current, _BACKING_SERVICE_DOWN):
        document = _unavailable_document(request, current)
        return JsonResponse(
            document,
            status=503,
            content_type=PROBLEM_CONTENT_TYPE,
            headers=problem_headers(503, {"Retry-After": RETRY_AFTER_SECONDS}),
        )
    return problem_response(request, status=500, code=ErrorCode.INTERNAL_ERROR, detail="An unexpected error occurred.")
