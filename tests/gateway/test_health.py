"""Liveness and readiness against the real PostgreSQL, Redis and RabbitMQ."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from tests.support.clients import ALPHA_HOST


@pytest.mark.parametrize("host", ["localhost", ALPHA_HOST])
def test_live_answers_on_every_host(host: str, db: None, client_for: Callable[[str], APIClient]) -> None:
    response = client_for(host).get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "release": "dev"}


def test_ready_checks_each_backing_service_with_its_latency(db: None, client_for: Callable[[str], APIClient]) -> None:
    response = client_for("localhost").get("/health/ready")

    assert response.status_code == 200
    checks = response.json()["checks"]
    assert set(checks) == {"postgresql", "redis", "rabbitmq", "policy", "keys"}
    for result in checks.values():
        assert result["status"] == "up"
        assert result["latency_ms"] >= 0


@pytest.mark.parametrize(
    ("override", "down"),
    [
        ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "redis"),
        ({"RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:1//"}, "rabbitmq"),
    ],
)
def test_ready_is_503_naming_what_is_down(
    override: dict[str, str], down: str, db: None, client_for: Callable[[str], APIClient]
) -> None:
    with override_settings(**override, HEALTH_CHECK_TIMEOUT_SECONDS=0.5):
        response = client_for("localhost").get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "dependencies_unavailable"
    assert body["detail"] == f"Not ready: {down} unavailable."
    assert body["checks"][down]["status"] == "down"
    assert all(result["status"] == "up" for name, result in body["checks"].items() if name != down)


def broken_check() -> None:
    raise ConnectionError("database down")


def test_ready_reports_postgresql_down(db: None, client_for: Callable[[str], APIClient], settings: Any) -> None:
    settings.READINESS_CHECKS = {**settings.READINESS_CHECKS, "postgresql": f"{__name__}.broken_check"}

    response = client_for("localhost").get("/health/ready")

    assert response.status_code == 503
    assert "postgresql" in response.json()["detail"]


@pytest.mark.parametrize("host", ["localhost", ALPHA_HOST])
@override_settings(SECURE_SSL_REDIRECT=True)
def test_with_the_https_redirect_on_only_the_probes_answer_over_plain_http(
    host: str, db: None, client_for: Callable[[str], APIClient]
) -> None:
    client = client_for(host)

    probes = {path: client.get(path).status_code for path in ("/health/live", "/health/ready")}
    others = {path: client.get(path) for path in ("/api/v1/me", "/.well-known/jwks.json", "/health/live/x")}

    assert probes == {"/health/live": 200, "/health/ready": 200}
    assert {path: response.status_code for path, response in others.items()} == dict.fromkeys(others, 301)
    assert all(response["Location"].startswith("https://") for response in others.values())
