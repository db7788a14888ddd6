"""What the service enforces itself at its edge: rate limits, body limits, headers, API versions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.checks import run_checks
from django.test import override_settings
from rest_framework.test import APIClient

from security.models import User
from tenants.models import Community
from tests.support.clients import ALPHA_HOST, bearer
from tests.support.tokens import token_for


@override_settings(RATE_LIMIT_PER_IP=60, RATE_LIMIT_IP_BURST=5)
def test_an_address_gets_its_burst_then_429_with_retry_after(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    client = client_for(ALPHA_HOST)
    answers = [client.get("/api/v1/me") for _ in range(6)]

    assert [answer.status_code for answer in answers] == [401] * 5 + [429]
    assert [answer["RateLimit-Remaining"] for answer in answers[:5]] == ["4", "3", "2", "1", "0"]
    refused = answers[-1]
    assert refused.json()["code"] == "rate_limited"
    assert refused["Retry-After"] == "1"
    assert refused["RateLimit-Policy"] == "60;w=60;burst=5"
    # Another address is counted on its own.
    assert APIClient(HTTP_HOST=ALPHA_HOST, REMOTE_ADDR="198.51.100.9").get("/api/v1/me").status_code == 401


@override_settings(RATE_LIMIT_PER_USER=3, RATE_LIMIT_USER_BURST=3)
def test_a_user_is_limited_per_hour_across_addresses(alpha: Community, member: Callable[..., User]) -> None:
    token = token_for(member(alpha), alpha)
    answers = [
        bearer(APIClient(HTTP_HOST=ALPHA_HOST, REMOTE_ADDR=f"198.51.100.{n}"), token).get("/api/v1/me")
        for n in range(4)
    ]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert answers[-1]["RateLimit-Policy"] == "3;w=3600;burst=3"
    assert int(answers[-1]["Retry-After"]) > 1000  # an hour's worth, less what has passed


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_with_redis_down_api_routes_refuse_and_probes_stay_up(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    client = client_for(ALPHA_HOST)

    refused = client.post("/api/v1/auth/token", {"email": "a@example.org", "password": "x"}, format="json")
    assert refused.status_code == 503
    assert refused.json()["code"] == "rate_limit_unavailable"
    assert client.get("/health/live").status_code == 200
    assert client.get("/.well-known/jwks.json").status_code == 200


def test_health_probes_are_never_limited(db: None, client_for: Callable[[str], APIClient]) -> None:
    with override_settings(RATE_LIMIT_IP_BURST=1):
        answers = [client_for("localhost").get("/health/live").status_code for _ in range(5)]

    assert answers == [200] * 5


def test_a_declared_length_over_the_limit_is_413_before_parsing(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    response = client_for(ALPHA_HOST).generic(
        "POST", "/api/v1/auth/token", "{}", content_type="application/json", CONTENT_LENGTH="2000000"
    )

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_a_declared_length_in_digits_that_are_not_ascii_is_413_not_a_crash(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    response = client_for(ALPHA_HOST).generic(
        "POST", "/api/v1/auth/token", "{}", content_type="application/json", CONTENT_LENGTH="\u00b2"
    )

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_a_chunked_body_without_a_length_is_413(alpha: Community, client_for: Callable[[str], APIClient]) -> None:
    response = client_for(ALPHA_HOST).generic(
        "POST",
        "/api/v1/auth/token",
        "",
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
    )

    assert response.status_code == 413
    assert response.json()["code"] == "length_required"


def test_api_responses_are_never_cached_and_carry_their_version(
    alpha: Community,
    member: Callable[..., User],
    client_for: Callable[[str], APIClient],
) -> None:
    response = bearer(client_for(ALPHA_HOST), token_for(member(alpha), alpha)).get("/api/v1/me")

    assert response["Cache-Control"] == "no-store"
    assert response["API-Version"] == "v1"
    assert "Deprecation" not in response
    assert len(response["X-Request-ID"]) == 32
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "no-referrer"


def test_every_page_carries_a_strict_content_security_policy(db: None, client_for: Callable[[str], APIClient]) -> None:
    policy = client_for("localhost").get("/api/docs/")["Content-Security-Policy"]

    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy


DEPRECATED: dict[str, dict[str, Any]] = {
    "v1": {
        "deprecated": datetime(2026, 9, 1, tzinfo=UTC),
        "sunset": datetime(2027, 3, 1, tzinfo=UTC),
        "successor": "/api/v2/",
    }
}


def test_a_deprecated_version_says_so_with_its_sunset_and_successor(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    with override_settings(API_VERSIONS=DEPRECATED):
        response = client_for(ALPHA_HOST).get("/api/v1/me")

    assert response["Deprecation"] == f"@{int(DEPRECATED['v1']['deprecated'].timestamp())}"
    assert response["Sunset"] == "Mon, 01 Mar 2027 00:00:00 GMT"
    assert response["Link"] == '</api/v2/>; rel="successor-version"'


def test_a_version_past_its_sunset_is_gone(alpha: Community, client_for: Callable[[str], APIClient]) -> None:
    past = {
        "v1": {
            **DEPRECATED["v1"],
            "sunset": datetime.now(tz=UTC) - timedelta(days=1),
            "deprecated": datetime.now(tz=UTC) - timedelta(days=200),
        }
    }
    with override_settings(API_VERSIONS=past):
        response = client_for(ALPHA_HOST).get("/api/v1/me")

    assert response.status_code == 410
    assert response.json()["code"] == "version_sunset"
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Link"] == '</api/v2/>; rel="successor-version"'


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        (
            {
                "deprecated": datetime(2026, 9, 1, tzinfo=UTC),
                "sunset": datetime(2026, 10, 1, tzinfo=UTC),
                "successor": "/api/v2/",
            },
            "gateway.E001",
        ),
        ({"deprecated": datetime(2026, 9, 1, tzinfo=UTC), "sunset": None, "successor": None}, "gateway.E002"),
    ],
)
def test_a_sunset_must_be_announced_three_months_ahead(entry: dict[str, Any], error: str) -> None:
    with override_settings(API_VERSIONS={"v1": entry}):
        assert error in {message.id for message in run_checks()}
