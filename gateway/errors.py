"""The one application error base class every package raises.

This module imports nothing else from the project, so ``tenants``, ``security``,
``policy`` and ``vault`` may all raise :class:`ApplicationError` subclasses
without depending on the HTTP layer. The DRF exception handler in
:mod:`gateway.problems` renders them as RFC 9457 problem details; management
commands print their ``detail`` as a one-line error.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar


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


class NotFound(ApplicationError):
    """Nothing the caller may see exists here (404)."""

    status = 404
    title = "Not found"


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
