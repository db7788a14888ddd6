"""The members every RFC 9457 problem document of this service has, built from plain values, without Django.

:mod:`core.problems` adds what a Django request knows (``instance``,
``request_id``) and renders the document for Django and DRF; gunicorn's worker
(:mod:`config.gunicorn_worker`) writes the same members for the requests it
refuses before Django sees them. It is imported there before gunicorn's gevent
worker has patched the standard library, so it imports nothing but the standard
library and :mod:`core.errors`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:compliance-gateway:problem:"

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    410: "Gone",
    413: "Content too large",
    414: "URI too long",
    415: "Unsupported media type",
    417: "Expectation failed",
    429: "Too many requests",
    431: "Request header fields too large",
    500: "Internal server error",
    501: "Not implemented",
    503: "Service unavailable",
}


def problem_members(*, status: int, code: StrEnum | str, detail: str, title: str | None = None) -> dict[str, Any]:
    """``type``, ``title``, ``status``, ``detail`` and our ``code``: the members every problem document has."""
    return {
        "type": PROBLEM_TYPE_PREFIX + str(code),
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": str(code),
    }
