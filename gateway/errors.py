"""Error codes of the edge: refusals the middleware gives before any view runs."""

from __future__ import annotations

from enum import StrEnum


class GatewayErrorCode(StrEnum):
    """Why the edge refused a request, or why it is not ready."""

    LENGTH_REQUIRED = "length_required"
    VERSION_SUNSET = "version_sunset"
    OPERATION_SUNSET = "operation_sunset"  # one operation past its own Sunset (core.contract.Deprecation)
    GATEWAY_REQUIRED = "gateway_required"
    PROXY_CHECK_UNAVAILABLE = "proxy_check_unavailable"
    DEPENDENCIES_UNAVAILABLE = "dependencies_unavailable"
    CSRF_FAILED = "csrf_failed"
    METRICS_TOKEN_REQUIRED = "metrics_token_required"  # an error code, not a secret  # noqa: S105  # nosec B105
