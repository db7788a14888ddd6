"""The per-address rate limit in the service itself (Kong's fails open when its Redis is down; this one does not).

Per client address: ``RATE_LIMIT_PER_IP`` requests per minute with bursts up to
``RATE_LIMIT_IP_BURST``, counted (:func:`core.ratelimit.check`) by middleware
before anything else. Redis unreachable: API routes answer 503 rather than run
unlimited; health probes are never limited. The per-user limit is counted as
soon as a token is verified (:func:`security.identity.throttle.check_user`).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core.errors import ServiceUnavailable
from core.http import HEALTH_PREFIX, client_bucket
from core.problems import application_error_response
from core.ratelimit import check, refusal


class ClientRateLimitMiddleware:
    """Per-address limit on every route but the health probes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Count the request; refuse past the limit, or when the count cannot be made on an API route."""
        if request.path.startswith(HEALTH_PREFIX):
            return self.get_response(request)
        try:
            verdict = check(
                f"ip:{client_bucket(request)}",
                per=settings.RATE_LIMIT_PER_IP,
                period_seconds=60,
                burst=settings.RATE_LIMIT_IP_BURST,
            )
        except ServiceUnavailable as error:
            if request.path.startswith("/api/"):
                return application_error_response(request, error)
            return self.get_response(request)  # docs, JWKS, admin: nothing protected runs unlimited
        if not verdict.allowed:
            return application_error_response(request, refusal(verdict))
        response = self.get_response(request)
        for name, value in verdict.headers().items():
            response.headers.setdefault(name, value)
        return response
