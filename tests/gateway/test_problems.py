"""Every error is an RFC 9457 problem document: right status, no stack trace, no PHI."""

from __future__ import annotations

from collections.abc import Callable
from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client, override_settings
from redis.exceptions import ConnectionError as RedisConnectionError
from rest_framework.exceptions import ErrorDetail
from rest_framework.test import APIClient

from gateway.problems import _field_errors
from tenants.models import Community
from tests.gateway.crash_urls import SECRET_IN_MESSAGE, CrashingApi
from tests.support.clients import ALPHA_HOST, BETA_HOST


def assert_problem(response: object, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response["Content-Type"] == "application/problem+json"  # type: ignore[index]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert {"type", "title", "status", "detail", "code", "instance", "request_id"} <= set(body)
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:compliance-gateway:problem:{code}"
    assert body["request_id"] == response["X-Request-ID"]  # type: ignore[index]
    return body


def test_malformed_json_is_400(alpha: Community, client_for: Callable[[str], APIClient]) -> None:
    response = client_for(ALPHA_HOST).post("/api/v1/auth/token", '{"email": ', content_type="application/json")

    assert_problem(response, 400, "malformed_request")


def test_a_wrong_media_type_is_415(alpha: Community, client_for: Callable[[str], APIClient]) -> None:
    response = client_for(ALPHA_HOST).post(
        "/api/v1/auth/token", "email=a", content_type="application/x-www-form-urlencoded"
    )

    assert_problem(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("host", [ALPHA_HOST, "localhost"])
def test_an_unknown_route_is_404_on_every_host(host: str, db: None, client_for: Callable[[str], APIClient]) -> None:
    assert_problem(client_for(host).get("/api/v1/no/such/route"), 404, "not_found")


def test_a_wrong_method_is_405(alpha: Community, client_for: Callable[[str], APIClient]) -> None:
    assert_problem(client_for(ALPHA_HOST).get("/api/v1/auth/token"), 405, "method_not_allowed")


@override_settings(ROOT_URLCONF="tests.gateway.crash_urls")
def test_a_crash_in_an_api_view_is_a_generic_500_and_the_log_has_no_message(
    alpha: Community, client_for: Callable[[str], APIClient], caplog: pytest.LogCaptureFixture
) -> None:
    response = client_for(ALPHA_HOST).get("/api/v1/crash")

    body = assert_problem(response, 500, "internal_error")
    assert "Traceback" not in response.content.decode()
    assert SECRET_IN_MESSAGE not in response.content.decode()
    assert body["detail"] == "An unexpected error occurred."
    assert "RuntimeError" in caplog.text
    assert SECRET_IN_MESSAGE not in caplog.text


@override_settings(ROOT_URLCONF="tests.gateway.crash_urls")
def test_a_crash_outside_drf_is_a_generic_500_too(alpha: Community) -> None:
    client = Client(HTTP_HOST=ALPHA_HOST, raise_request_exception=False)

    response = client.get("/plain-crash")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    assert SECRET_IN_MESSAGE not in response.content.decode()


def test_validation_messages_that_would_echo_input_are_replaced() -> None:
    errors = _field_errors({"sex": [ErrorDetail('"Jane Doe" is not a valid choice.', code="invalid_choice")]})

    assert errors == [{"field": "sex", "code": "invalid_choice", "message": "Not one of the allowed values."}]


def test_every_response_carries_a_request_id(db: None, client_for: Callable[[str], APIClient]) -> None:
    first = client_for("localhost").get("/health/live")
    second = client_for("localhost").get("/health/live")

    assert len(first["X-Request-ID"]) == 32
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_a_body_over_the_size_limit_is_413(alpha: Community, client_for: Callable[[str], APIClient]) -> None:
    oversized = '{"email": "' + "a" * 2_000_000 + '"}'

    response = client_for(ALPHA_HOST).post("/api/v1/auth/token", oversized, content_type="application/json")

    assert_problem(response, 413, "payload_too_large")


def test_a_body_over_the_size_limit_outside_the_api_is_413_too(db: None) -> None:
    client = Client(HTTP_HOST="localhost")

    response = client.post("/admin/login/", {"username": "a" * 2_000_000}, format="multipart")

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


@pytest.mark.parametrize(
    "failure",
    [
        OperationalError("connection to server at db.internal failed: participant Jane Doe"),
        InterfaceError("connection already closed"),
    ],
    ids=["operational", "interface"],
)
def test_a_database_that_cannot_be_reached_is_503_on_every_community(
    failure: Exception, alpha: Community, beta: Community, caplog: pytest.LogCaptureFixture
) -> None:
    # The database fails before any view runs (the community's lookup, a greenlet's first connection):
    # Django answers through handler500, which must not call it a crash of the service.
    for host in (ALPHA_HOST, BETA_HOST):
        client = Client(HTTP_HOST=host, raise_request_exception=False)
        with mock.patch.object(BaseDatabaseWrapper, "ensure_connection", side_effect=failure):
            response = client.get("/api/v1/participants/")

        body = assert_problem(response, 503, "dependencies_unavailable")
        assert response["Retry-After"] == "5"
        assert response["Cache-Control"] == "no-store"
        assert "Jane Doe" not in response.content.decode()
        assert "db.internal" not in str(body)
    assert type(failure).__name__ in caplog.text
    assert "Jane Doe" not in caplog.text
    assert "db.internal" not in caplog.text


@pytest.mark.parametrize(
    "failure",
    [OperationalError("server closed the connection"), RedisConnectionError("Error 111 connecting")],
    ids=["database", "redis"],
)
@override_settings(ROOT_URLCONF="tests.gateway.crash_urls")
def test_a_backing_service_failure_inside_an_api_view_is_503_too(
    failure: Exception, alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    with mock.patch.object(CrashingApi, "get", side_effect=failure):
        response = client_for(ALPHA_HOST).get("/api/v1/crash")

    assert_problem(response, 503, "dependencies_unavailable")
    assert response["Retry-After"] == "5"


@override_settings(ROOT_URLCONF="tests.gateway.crash_urls")
def test_any_other_crash_stays_a_500(alpha: Community) -> None:
    # The 503 is for backing services only: a programming error must not pass for an outage to retry.
    response = Client(HTTP_HOST=ALPHA_HOST, raise_request_exception=False).get("/plain-crash")

    assert response.status_code == 500
    assert "Retry-After" not in response
