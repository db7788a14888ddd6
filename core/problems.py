"""RFC 9457 problem details: the one shape every error response takes.

Any layer that answers outside DRF (middleware, plain Django views) renders its
refusal here; the edge's DRF exception handler (:mod:`gateway.problems`) builds
the same document. Its members come from :mod:`core.rfc9457`, which gunicorn's
worker uses too for what it refuses before Django. No document built here
carries a stack trace, a secret or PHI: the detail is the application's own
sentence.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from django.http import HttpRequest, JsonResponse
from rest_framework.request import Request

from core.errors import ApplicationError
from core.http import edge_of
from core.rfc9457 import PROBLEM_CONTENT_TYPE, problem_members

__all__ = [
    "BEARER_CHALLENGE",
    "PROBLEM_CONTENT_TYPE",
    "application_error_response",
    "problem_document",
    "problem_headers",
    "problem_response",
]

# The one challenge a 401 carries (RFC 6750), here and in the token authentication.
BEARER_CHALLENGE = 'Bearer realm="api"'


def problem_document(
    request: HttpRequest | Request | None,
    *,
    status: int,
    code: StrEnum | str,
    detail: str,
    title: str | None = None,
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build an RFC 9457 problem document with our ``code`` and ``request_id`` members."""
    document = problem_members(status=status, code=code, detail=detail, title=title)
    if request is not None:
        document["instance"] = request.path
        document["request_id"] = edge_of(request).request_id
    document.update(extensions or {})
    return document


def problem_headers(status: int, headers: dict[str, str] | None) -> dict[str, str]:
    """Headers every problem response carries: never cached; 401 says how to authenticate."""
    merged = dict(headers or {})
    if status == 401:  # noqa: PLR2004 - HTTP status
        merged.setdefault("WWW-Authenticate", BEARER_CHALLENGE)
    merged["Cache-Control"] = "no-store"
    return merged


def problem_response(
    request: HttpRequest | None,
    *,
    status: int,
    code: StrEnum | str,
    detail: str,
    title: str | None = None,
    extensions: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    """Render a problem document as a plain Django response (middleware and non-DRF views)."""
    document = problem_document(request, status=status, code=code, detail=detail, title=title, extensions=extensions)
    return JsonResponse(
        document, status=status, content_type=PROBLEM_CONTENT_TYPE, headers=problem_headers(status, headers)
    )


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
