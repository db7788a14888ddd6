"""Prometheus metrics of the service: the families, the request middleware and the ``/metrics`` view.

prometheus_client keeps the figures. Under gunicorn each worker is its own
process, so when ``PROMETHEUS_MULTIPROC_DIR`` is set the values live in files
there and a scrape aggregates every worker's (``config/gunicorn.py`` sets the
directory up and marks a dead worker's gauges); without it the process's own registry is served.

Labels are bounded by construction: the route is the URL pattern template of
the matched view (``/api/v1/participants/{pk}/``, never an id), unmatched paths
are ``unmatched``, and methods outside the usual set are ``other``. No label
carries a community, a user, a token or anything a client typed.

``/metrics`` is routed on the platform host only (a community host answers 404
like any unknown path) and wants ``Authorization: Bearer <METRICS_TOKEN>``;
an empty token refuses every scrape.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from core.comparison import ascii_equal
from core.metrics import (  # re-exported: the lower layers record these families
    DATA_KEY_CACHE,
    KEY_PROVIDER_CALLS,
    POLICY_DECISIONS,
    POLICY_DURATION,
    record_data_key_lookup,
    record_key_call,
    record_policy_decision,
)
from core.problems import problem_response
from gateway.errors import GatewayErrorCode
from gateway.metrics_scrape import scrape_time_registry

REQUESTS = Counter(
    "gateway_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
REQUEST_DURATION = Histogram(
    "gateway_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
)
RATE_LIMIT_REFUSALS = Counter(
    "gateway_rate_limit_refusals",
    "Requests refused with 429 by a rate limit (per address or per user).",
)
__all__ = [
    "DATA_KEY_CACHE",
    "KEY_PROVIDER_CALLS",
    "POLICY_DECISIONS",
    "POLICY_DURATION",
    "RATE_LIMIT_REFUSALS",
    "REQUESTS",
    "REQUEST_DURATION",
    "RequestMetricsMiddleware",
    "metrics_view",
    "record_data_key_lookup",
    "record_key_call",
    "record_policy_decision",
    "route_template",
    "scrape_registry",
]

UNMATCHED_ROUTE = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CONVERTER = re.compile(r"<(?:[^>:]+:)?([^>]+)>")


def route_template(request: HttpRequest) -> str:
    """The matched URL pattern as ``/api/v1/participants/{pk}/``; ``unmatched`` when nothing matched."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return UNMATCHED_ROUTE
    return "/" + _CONVERTER.sub(r"{\1}", match.route.lstrip("^").rstrip("$"))


def method_label(request: HttpRequest) -> str:
    """The request method, or ``other`` for anything outside the usual set (a crafted method is no new label)."""
    method = (request.method or "").upper()
    return method if method in KNOWN_METHODS else "other"


class RequestMetricsMiddleware:
    """Count every answered request and time it, by route template (refusals of outer middleware included)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Run the pipeline, then record method, route template, status and duration."""
        started = time.perf_counter()
        response = self.get_response(request)
        method, route = method_label(request), route_template(request)
        REQUEST_DURATION.labels(method=method, route=route).observe(time.perf_counter() - started)
        REQUESTS.labels(method=method, route=route, status=str(response.status_code)).inc()
        if response.status_code == 429:  # noqa: PLR2004 - Too Many Requests
            RATE_LIMIT_REFUSALS.inc()
        return response


def scrape_registry() -> CollectorRegistry:
    """The registry a scrape reads: every worker's files in multiprocess mode, else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def _authorized(request: HttpRequest) -> bool:
    expected = str(settings.METRICS_TOKEN)
    if not expected:
        return False
    supplied = str(request.META.get("HTTP_AUTHORIZATION", ""))
    return ascii_equal(f"Bearer {expected}", supplied)


@never_cache
@csrf_exempt  # no cookie, no form: an unsafe method is the 405 below, not a CSRF 403
@require_safe  # GET and HEAD; anything else 405 with Allow (gateway.middleware.MethodNotAllowedMiddleware)
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The exposition, for a scraper presenting ``METRICS_TOKEN``; 401 problem otherwise."""
    if not _authorized(request):
        return problem_response(
            request,
            status=401,
            code=GatewayErrorCode.METRICS_TOKEN_REQUIRED,
            detail="A valid metrics token is required.",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"},
        )
    body = generate_latest(scrape_registry()) + generate_latest(scrape_time_registry())
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
