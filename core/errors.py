"""The one application error base class every package raises, and the codes every package shares.

The kernel imports nothing of the project, so ``tenants``, ``security``,
``policy``, ``vault`` and ``services`` may all raise :class:`ApplicationError`
subclasses without depending on the HTTP layer. :mod:`core.problems` renders
them as RFC 9457 problem details (the edge's DRF exception handler calls it);
management commands print their ``detail`` as a one-line error.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    """Codes that are nobody's own: the generic refusals of HTTP and of any app.

    An app's specific reasons live in its own enum (``CommunityErrorCode``,
    ``IdentityErrorCode``...); these are the ones every layer may give.
    """

    BAD_REQUEST = "bad_request"
    MALFORMED_REQUEST = "malformed_request"
    VALIDATION_FAILED = "validation_failed"
    UNKNOWN_FIELD = "unknown_field"
    INVALID = "invalid"
    INVALID_TYPE = "invalid_type"  # a value of another JSON type than the field documents
    INVALID_FILTER = "invalid_filter"
    INVALID_FORMAT = "invalid_format"
    INVALID_PAGE_SIZE = "invalid_page_size"
    INVALID_CURSOR = "invalid_cursor"
    TOO_MANY_PARAMETERS = "too_many_parameters"
    # gunicorn's refusals of what is not HTTP it will parse (config/gunicorn_worker.py).
    MALFORMED_HTTP_REQUEST = "malformed_http_request"
    REQUEST_LINE_TOO_LONG = "request_line_too_long"
    HEADER_FIELDS_TOO_LARGE = "header_fields_too_large"
    EXPECTATION_FAILED = "expectation_failed"
    UNSUPPORTED_TRANSFER_CODING = "unsupported_transfer_coding"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    AUTHENTICATION_REQUIRED = "authentication_required"
    INVALID_TOKEN = "invalid_token"  # an error code, not a secret  # noqa: S105  # nosec B105
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RATE_LIMITED = "rate_limited"
    RATE_LIMIT_UNAVAILABLE = "rate_limit_unavailable"
    INTERNAL_ERROR = "internal_error"
    ERROR = "error"


class ApplicationError(Exception):
    """A failure the client (or operator) can act on.

    Attributes:
        status: HTTP status the error maps to.
        code: Stable machine-readable reason, one of an app's error-code enum.
        title: Short human summary of the kind of problem.
        detail: Human explanation of this occurrence. Never contains PHI or secrets.
        extensions: Extra problem members (for example ``errors`` per field).
        headers: Extra response headers (for example ``Retry-After``).
    """

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        code: StrEnum | str,
        extensions: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = str(code)
        self.extensions = dict(extensions or {})
        self.headers = dict(headers or {})


class BadRequest(ApplicationError):
    """The request is malformed or fails validation (400)."""


class Unauthenticated(ApplicationError):
    """Credentials are missing or invalid (401)."""

    status = 401
    title = "Unauthorized"


class Forbidden(ApplicationError):
    """The caller is known but may not do this (403)."""

    status = 403
    title = "Forbidden"


# What an item route says of an id the caller may not see, whether it is missing or hidden by the policy.
MISSING_DETAIL = "Nothing was found here."


class NotFound(ApplicationError):
    """Nothing the caller may see exists here (404)."""

    status = 404
    title = "Not found"

    @classmethod
    def missing(cls) -> NotFound:
        """The one 404 of a record the caller may not know of: a miss and a hidden denial give these same bytes.

        It names no resource type and carries no decision id, so nothing in the
        document depends on whether the record exists; the audit event (found by
        the document's ``request_id``) keeps the decision.
        """
        return NotFound(MISSING_DETAIL, code=ErrorCode.NOT_FOUND)


class Conflict(ApplicationError):
    """The request conflicts with the current state (409)."""

    status = 409
    title = "Conflict"


class TooManyRequests(ApplicationError):
    """The caller must wait before trying again (429)."""

    status = 429
    title = "Too many requests"


class ServiceUnavailable(ApplicationError):
    """A dependency is down; the service fails closed (503)."""

    status = 503
    title = "Service unavailable"
