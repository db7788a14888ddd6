"""``/metrics``: served on the platform host only, behind its token, with bounded labels."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from config.celery import declare_queues
from tests.support.clients import ALPHA_HOST, BETA_HOST

TOKEN = "scrape-token-for-tests"


@pytest.fixture
def metrics_token(settings: pytest.FixtureRequest) -> str:
    settings.METRICS_TOKEN = TOKEN  # type: ignore[attr-defined]
    return TOKEN


def scrape(client_for: Callable[[str], APIClient]) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = client_for("localhost").get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


@pytest.mark.parametrize("host", [ALPHA_HOST, BETA_HOST])
def test_metrics_is_not_found_on_a_community_host(
    host: str, metrics_token: str, alpha: object, beta: object, client_for: Callable[[str], APIClient]
) -> None:
    response = client_for(host).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {metrics_token}")

    assert response.status_code == 404
    assert b"gateway_http_requests" not in response.content


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN])
def test_metrics_refuses_a_missing_or_wrong_token(
    authorization: str | None, metrics_token: str, db: None, client_for: Callable[[str], APIClient]
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client_for("localhost").get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "metrics_token_required"
    assert b"gateway_" not in response.content


def test_an_empty_metrics_token_refuses_every_scrape(
    db: None, settings: object, client_for: Callable[[str], APIClient]
) -> None:
    settings.METRICS_TOKEN = ""  # type: ignore[attr-defined]

    response = client_for("localhost").get("/metrics", HTTP_AUTHORIZATION="Bearer ")

    assert response.status_code == 401


def test_requests_are_counted_by_route_template_never_by_id(
    metrics_token: str, alpha: object, beta: object, client_for: Callable[[str], APIClient]
) -> None:
    crafted = [f"/api/v1/participants/{uuid.uuid4()}/" for _ in range(3)] + [
        f"/no/such/{uuid.uuid4()}" for _ in range(3)
    ]
    for path in crafted:
        client_for(ALPHA_HOST).get(path)
    client_for(BETA_HOST).get(crafted[0])

    samples = scrape(client_for)

    routes = {labels["route"] for labels, _ in samples["gateway_http_requests_total"]}
    assert "/api/v1/participants/{pk}/" in routes or any("{" in route for route in routes if "participants" in route)
    assert "unmatched" in routes
    assert not any(
        path.split("/")[-2] in route or path.split("/")[-1] in route
        for path in crafted
        for route in routes
        if path.split("/")[-1]
    )
    assert not any(
        "alpha" in str(labels) or "beta" in str(labels) for labels, _ in samples["gateway_http_requests_total"]
    )
    assert "gateway_http_request_duration_seconds_bucket" in samples


def test_scrape_time_figures_are_present(
    metrics_token: str, alpha: object, beta: object, client_for: Callable[[str], APIClient]
) -> None:
    declare_queues()

    samples = scrape(client_for)

    up = {labels["source"]: value for labels, value in samples["gateway_scrape_source_up"]}
    assert up == {"audit": 1.0, "broker": 1.0}
    assert samples["gateway_audit_chain_lag_seconds"][0][1] >= 0
    assert {labels["queue"] for labels, _ in samples["gateway_dead_letters"]} == {
        labels["queue"] for labels, _ in samples["gateway_queue_depth"]
    }


def test_a_broker_that_is_down_is_a_figure_not_a_failed_scrape(
    metrics_token: str, db: None, settings: object, client_for: Callable[[str], APIClient]
) -> None:
    settings.RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:1//"  # type: ignore[attr-defined]
    settings.HEALTH_CHECK_TIMEOUT_SECONDS = 0.5  # type: ignore[attr-defined]

    samples = scrape(client_for)

    up = {labels["source"]: value for labels, value in samples["gateway_scrape_source_up"]}
    assert up["broker"] == 0.0
    assert "gateway_queue_depth" not in samples


@pytest.mark.parametrize("probe", ["/health/live", "/health/ready"])
def test_health_probes_report_the_release(
    probe: str, db: None, settings: object, client_for: Callable[[str], APIClient]
) -> None:
    settings.SERVICE_RELEASE = "2026.12.1"  # type: ignore[attr-defined]

    response = client_for("localhost").get(probe)

    assert response.json()["release"] == "2026.12.1"
