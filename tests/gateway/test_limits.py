"""Django's own limits end as problem documents, at the bounds core/limits.py names, on a DRF route or not.

``DATA_UPLOAD_MAX_NUMBER_FIELDS`` (query parameters, form fields): Django
raises ``TooManyFieldsSent`` where the query string is first read, in DRF's
content negotiation, which the DRF exception handler once answered 500. A body
over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is 413, a Host that is not served 400,
and a form's failed CSRF check (the admin's) a 403 problem, not Django's page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from core.limits import BODY_MAX_BYTES, QUERY_PARAMETERS_MAX
from tenants.models import Community
from tests.support.clients import ALPHA_HOST, BETA_HOST, MemberClient, client_on

MARKER = "MRN-0042-ADA-LOVELACE"


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["request_id"] == response["X-Request-ID"]
    return body


def parameters(count: int) -> str:
    return "&".join(f"p{n}={MARKER}" for n in range(count))


def test_the_settings_are_the_documented_bounds() -> None:
    assert settings.DATA_UPLOAD_MAX_NUMBER_FIELDS == QUERY_PARAMETERS_MAX
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == BODY_MAX_BYTES


@pytest.mark.parametrize("host", [ALPHA_HOST, BETA_HOST])
def test_one_query_parameter_too_many_is_400_on_a_drf_route_of_either_community(
    member_client: MemberClient, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = member_client("principal_investigator", on_beta=host == BETA_HOST)

    with caplog.at_level("DEBUG"):
        refused = client.get(f"/api/v1/studies/?{parameters(QUERY_PARAMETERS_MAX + 1)}")

    body = assert_problem(refused, 400, "too_many_parameters")
    assert str(QUERY_PARAMETERS_MAX) in body["detail"]
    assert MARKER not in refused.content.decode() + caplog.text
    assert "unhandled" not in caplog.text


def test_as_many_query_parameters_as_the_bound_are_read(member_client: MemberClient) -> None:
    client, _ = member_client("principal_investigator")

    # Read, and refused for what they are (the study list knows no such filter), not for their number.
    assert client.get(f"/api/v1/studies/?{parameters(QUERY_PARAMETERS_MAX)}").status_code == 200


def test_too_many_parameters_are_400_before_any_token_is_asked_for(alpha: Community) -> None:
    client = Client(HTTP_HOST=ALPHA_HOST)

    refused = client.post(
        f"/api/v1/auth/token?{parameters(QUERY_PARAMETERS_MAX + 1)}", "{}", content_type="application/json"
    )

    assert_problem(refused, 400, "too_many_parameters")


def test_too_many_form_fields_outside_drf_are_400_through_handler400(db: None) -> None:
    client = Client(HTTP_HOST="localhost", raise_request_exception=False)
    form = {f"field{n}": MARKER for n in range(QUERY_PARAMETERS_MAX + 1)}

    refused = client.post("/admin/login/", form)

    assert_problem(refused, 400, "too_many_parameters")


def test_a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_413(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    client = client_for(ALPHA_HOST)
    at_limit = '{"email": "' + "a" * (BODY_MAX_BYTES - len('{"email": ""}')) + '"}'
    assert len(at_limit) == BODY_MAX_BYTES

    read = client.post("/api/v1/auth/token", at_limit, content_type="application/json")
    refused = client.post("/api/v1/auth/token", at_limit + " ", content_type="application/json")

    assert read.status_code == 400  # read, and refused for its fields
    assert read.json()["code"] == "validation_failed"
    assert_problem(refused, 413, "payload_too_large")


@pytest.mark.parametrize(
    "host",
    ["bad host", "evil.example", "[::1", "alpha.localhost\x00", "alpha.localhost:99999x", "a" * 300],
)
def test_a_malformed_or_unserved_host_is_a_400_problem(db: None, host: str) -> None:
    for path in ("/api/v1/me", "/health/live", "/no/such/route"):
        assert_problem(client_on(host).get(path), 400, "invalid_host")


def test_a_form_failing_its_csrf_check_is_a_403_problem(db: None) -> None:
    client = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)

    refused = client.post("/admin/login/", {"username": MARKER, "password": "x"})

    assert_problem(refused, 403, "csrf_failed")
    assert MARKER not in refused.content.decode()
