"""Liveness and readiness endpoints for orchestrators and load balancers.

``/health/live`` says the process answers. ``/health/ready`` runs every check
``READINESS_CHECKS`` names (PostgreSQL, Redis and RabbitMQ here; the policy
engine and the key service from their own packages), reports each one's
latency, and answers 503 naming what is down. Neither needs a token nor reveals anything about communities.

Both readiness answers, 200 and 503, also carry ``resources``: memory, disk and
database connections as they stand (:mod:`gateway.resources`). A resource
past ``READINESS_RESOURCE_WARN_RATIO`` says ``warn`` but never makes readiness
fail: under shared pressure an orchestrator would pull every replica at once.
Only the checks decide 503.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from kombu import Connection
from redis.cluster import RedisCluster

from core.problems import problem_response
from core.redis import get_redis
from gateway.errors import GatewayErrorCode
from gateway.resources import resources_report


def check_postgresql() -> None:
    """Run a trivial query on the default database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_redis() -> None:
    """PING the Redis server; of a Redis Cluster, require ``cluster_state:ok`` (every slot served)."""
    client = get_redis()
    if not isinstance(client, RedisCluster):
        client.ping()
        return
    state = client.cluster_info().get("cluster_state")
    if state != "ok":
        raise ConnectionError(f"cluster_state is {state}")


def check_rabbitmq() -> None:
    """Open and close an AMQP connection to the broker."""
    timeout = settings.HEALTH_CHECK_TIMEOUT_SECONDS
    with Connection(settings.RABBITMQ_URL, connect_timeout=timeout, transport_options={"max_retries": 0}) as broker:
        broker.ensure_connection(max_retries=1, timeout=math.ceil(timeout))


ReadinessCheck = Callable[[], None]  # raises when its dependency is down


def readiness_checks() -> dict[str, ReadinessCheck]:
    """The checks ``READINESS_CHECKS`` names (dotted paths, so other packages can add theirs)."""
    return {name: import_string(path) for name, path in settings.READINESS_CHECKS.items()}


def run_checks() -> dict[str, dict[str, Any]]:
    """Run every readiness check; report status and latency in milliseconds for each."""
    results: dict[str, dict[str, Any]] = {}
    for name, check in readiness_checks().items():
        started = time.perf_counter()
        try:
            check()
        except Exception:  # noqa: BLE001 - any failure means "down"; the reason is not exposed
            status = "down"
        else:
            status = "up"
        results[name] = {"status": status, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
    return results


@csrf_exempt  # no cookie, no form: an unsafe method is the 405 below, not a CSRF 403
@require_safe  # GET and HEAD; anything else 405 with Allow (gateway.middleware.MethodNotAllowedMiddleware)
def live(request: HttpRequest) -> HttpResponse:
    """The process is up and answering."""
    return JsonResponse({"status": "ok", "release": settings.SERVICE_RELEASE}, headers={"Cache-Control": "no-store"})


@csrf_exempt  # no cookie, no form: an unsafe method is the 405 below, not a CSRF 403
@require_safe  # GET and HEAD; anything else 405 with Allow (gateway.middleware.MethodNotAllowedMiddleware)
def ready(request: HttpRequest) -> HttpResponse:
    """Ready when every backing service answers; otherwise 503 naming the ones that are down."""
    checks = run_checks()
    down = sorted(name for name, result in checks.items() if result["status"] != "up")
    resources = resources_report(database_up="postgresql" not in down)
    if down:
        return problem_response(
            request,
            status=503,
            code=GatewayErrorCode.DEPENDENCIES_UNAVAILABLE,
            detail="Not ready: " + ", ".join(down) + " unavailable.",
            extensions={"checks": checks, "resources": resources, "release": settings.SERVICE_RELEASE},
        )
    return JsonResponse(
        {"status": "ok", "release": settings.SERVICE_RELEASE, "checks": checks, "resources": resources},
        headers={"Cache-Control": "no-store"},
    )
