"""Every route, DRF or not, on every URLconf, answers a method it does not serve with a 405 problem and ``Allow``.

The health probes and ``/metrics`` are plain Django views (Django's own 405
is an empty HTML page, and through gunicorn an unsafe method on them met the
CSRF check's 403 page first); the schema and docs views negotiate YAML and
HTML, which once rendered their 405 in YAML and as "405 Method Not Allowed".
``Allow`` names what the route serves: ``HEAD`` wherever ``GET`` is, never
``OPTIONS`` (no route answers it: ``DEFAULT_METADATA_CLASS`` is None). The
admin is left out: an HTML application of its own, off in production.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from gateway.kong import sample_path
from policy.routes import walk
from security.models import User
from tenants.models import Community
from tests.support.clients import ALPHA_HOST, BETA_HOST, bearer, client_on
from tests.support.tokens import token_for

PLATFORM_HOST = "localhost"
ROUTES = [
    *((PLATFORM_HOST, sample_path(route)) for route in walk("config.urls_public") if route.name),
    *((ALPHA_HOST, sample_path(route)) for route in walk("config.urls_tenant") if route.name),
]
SERVED_BY_NONE = ["TRACE", "PROPFIND", "BREW", "OPTIONS"]


def is_admin(path: str) -> bool:
    return path.startswith("/admin/")


def assert_method_problem(response: Any) -> list[str]:
    """A 405 problem document; the methods its ``Allow`` names."""
    assert response.status_code == 405, (response.status_code, response.content[:200])
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["code"], body["status"]) == ("method_not_allowed", 405)
    assert body["request_id"] == response["X-Request-ID"]
    allowed = [method.strip() for method in response["Allow"].split(",")]
    assert "OPTIONS" not in allowed
    assert ("GET" in allowed) == ("HEAD" in allowed)
    return allowed


@pytest.mark.parametrize("method", SERVED_BY_NONE)
@pytest.mark.parametrize(("host", "path"), [route for route in ROUTES if not is_admin(route[1])])
def test_a_method_no_route_serves_is_a_405_problem_with_allow(db: None, host: str, path: str, method: str) -> None:
    assert_method_problem(client_on(host).generic(method, path))


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/health/live", ["GET", "HEAD"]),
        ("/health/ready", ["GET", "HEAD"]),
        ("/metrics", ["GET", "HEAD"]),
        ("/api/schema/", ["GET", "HEAD"]),
        ("/api/docs/", ["GET", "HEAD"]),
        ("/.well-known/jwks.json", ["GET", "HEAD"]),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_the_platform_routes_refuse_every_write_with_what_they_serve(
    db: None, path: str, allowed: list[str], method: str
) -> None:
    # CSRF checks on, as a browser-less client meets them through gunicorn.
    client = Client(HTTP_HOST=PLATFORM_HOST, enforce_csrf_checks=True)

    assert assert_method_problem(client.generic(method, path)) == allowed


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/.well-known/jwks.json", "/api/schema/"])
def test_head_answers_as_get_without_a_body(db: None, path: str) -> None:
    client = client_on(PLATFORM_HOST)

    got, head = client.get(path), client.head(path)

    assert (head.status_code, head["Content-Type"]) == (got.status_code, got["Content-Type"])
    assert head.content == b""


def test_head_on_the_metrics_asks_for_the_token_as_get_does(db: None) -> None:
    head = client_on(PLATFORM_HOST).head("/metrics")

    assert (head.status_code, head["Content-Type"]) == (401, "application/problem+json")


def test_a_served_routes_allow_names_no_options(db: None, client_for: Callable[[str], APIClient]) -> None:
    assert client_for(PLATFORM_HOST).get("/.well-known/jwks.json")["Allow"] == "GET, HEAD"
    assert client_for(ALPHA_HOST).post("/api/v1/auth/token", {}, format="json")["Allow"] == "POST"


def test_the_schema_refuses_a_media_type_it_cannot_give_in_a_json_problem(db: None) -> None:
    refused = client_on(PLATFORM_HOST).get("/api/schema/", HTTP_ACCEPT="text/csv")

    assert (refused.status_code, refused["Content-Type"]) == (406, "application/problem+json")
    assert refused.json()["code"] == "not_acceptable"


def test_across_communities_a_method_refusal_tells_nothing_more_than_to_anyone(
    alpha: Community, beta: Community, member: Callable[..., User]
) -> None:
    beta_member = bearer(client_on(BETA_HOST), token_for(member(beta, "principal_investigator"), beta))
    outsider = bearer(client_on(BETA_HOST), token_for(member(alpha, "principal_investigator"), alpha))
    forged = bearer(client_on(BETA_HOST), "not-a-token")

    for path in ("/api/v1/studies/", "/api/v1/me"):
        # Beta's own member and an anonymous caller get the same 405...
        own, anonymous = beta_member.delete(path), client_on(BETA_HOST).delete(path)
        assert assert_method_problem(own) == assert_method_problem(anonymous)
        assert own.json()["detail"] == anonymous.json()["detail"]
        # ...and alpha's token there is refused as any bad token is, before the method is looked at.
        refused, bad = outsider.delete(path), forged.delete(path)
        assert (
            (refused.status_code, refused.json()["code"])
            == (bad.status_code, bad.json()["code"])
            == (
                401,
                "invalid_token",
            )
        )
