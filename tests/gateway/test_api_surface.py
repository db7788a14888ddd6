"""The API surface: schema, local docs page, admin on the platform host only, every route per community."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from security.models import User
from tenants.models import Community
from tests.support.clients import ALPHA_HOST, BETA_HOST, bearer
from tests.support.tokens import token_for


def test_the_openapi_schema_lists_the_api(db: None, client_for: Callable[[str], APIClient]) -> None:
    response = client_for(ALPHA_HOST).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/v1/auth/token", "/api/v1/auth/refresh", "/api/v1/me", "/.well-known/jwks.json"} <= set(paths)


def test_the_docs_page_loads_nothing_from_a_cdn(db: None, client_for: Callable[[str], APIClient]) -> None:
    page = client_for("localhost").get("/api/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)

    assert assets
    assert all(asset.startswith("/") for asset in assets), assets
    assert "<script>" not in page  # the initialiser is a separate file (CSP without inline script)
    for asset in assets:
        assert client_for("localhost").get(asset).status_code == 200, asset


def test_admin_is_on_the_platform_host_only(db: None, client_for: Callable[[str], APIClient]) -> None:
    assert client_for("localhost").get("/admin/login/").status_code == 200
    assert client_for(ALPHA_HOST).get("/admin/login/").status_code == 404


def _api_routes() -> list[str]:
    """Every /api/v1/ route of the community URLconf, as a concrete path."""
    routes: list[str] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                routes.append("/" + prefix + str(pattern.pattern))

    walk(get_resolver("config.urls_tenant").url_patterns, "")
    return [route for route in routes if route.startswith("/api/v1/")]


AUTHENTICATED_ROUTES = {
    "/api/v1/auth/logout": "post",
    "/api/v1/auth/mfa/totp": "post",
    "/api/v1/auth/mfa/totp/confirm": "post",
    "/api/v1/me": "get",
    "/api/v1/audit/events/": "get",
    "/api/v1/audit/exports/": "post",
    "/api/v1/audit/exports/<uuid:pk>/": "get",
    "/api/v1/audit/exports/<uuid:pk>/download/": "get",
    "/api/v1/audit/exports/<uuid:pk>/manifest/": "get",
    "/api/v1/break-glass/": "post",
    "/api/v1/break-glass/<uuid:pk>/revoke/": "post",
    "/api/v1/break-glass/<uuid:pk>/review/": "post",
    "/api/v1/participants/<uuid:pk>/disclosures/": "get",
    "/api/v1/participants/<uuid:pk>/recorded-disclosures/": "post",
    "/api/v1/accounting-requests/": "post",
    "/api/v1/accounting-requests/<uuid:pk>/": "get",
    "/api/v1/accounting-requests/<uuid:pk>/extension/": "post",
    "/api/v1/accounting-requests/<uuid:pk>/provide/": "post",
    "/api/v1/accounting-requests/<uuid:pk>/copy/": "get",
    "/api/v1/accounting-suspensions/": "post",
    "/api/v1/studies/": "get",
    "/api/v1/studies/<uuid:pk>/": "get",
    "/api/v1/participants/": "get",
    "/api/v1/participants/search/": "post",
    "/api/v1/participants/<uuid:pk>/": "get",
    "/api/v1/participants/<uuid:pk>/consents/": "get",
    "/api/v1/participants/<uuid:pk>/consents/<uuid:consent_id>/withdraw/": "post",
    "/api/v1/participants/<uuid:pk>/consents/<uuid:consent_id>/authorization/": "post",
    "/api/v1/observations/": "get",
    "/api/v1/observations/<uuid:pk>/": "get",
    "/api/v1/exports/": "post",
    "/api/v1/exports/<uuid:pk>/": "get",
    "/api/v1/exports/<uuid:pk>/download/": "get",
    "/api/v1/exports/<uuid:pk>/manifest/": "get",
    "/api/v1/exports/<uuid:pk>/determination/": "post",
}
CREDENTIAL_ROUTES = {"/api/v1/auth/token", "/api/v1/auth/refresh"}
PUBLIC_KEY_ROUTES = {"/api/v1/audit/keys/"}


def test_every_api_route_is_covered_by_the_cross_community_test() -> None:
    assert set(_api_routes()) == set(AUTHENTICATED_ROUTES) | CREDENTIAL_ROUTES | PUBLIC_KEY_ROUTES


@pytest.mark.parametrize(("route", "method"), sorted(AUTHENTICATED_ROUTES.items()))
def test_an_alpha_token_opens_no_route_on_beta(
    route: str,
    method: str,
    alpha: Community,
    beta: Community,
    member: Callable[..., User],
    client_for: Callable[[str], APIClient],
) -> None:
    token = token_for(member(alpha, "owner"), alpha)

    path = route.replace("<uuid:pk>", str(uuid.uuid4())).replace("<uuid:consent_id>", str(uuid.uuid4()))

    response = getattr(bearer(client_for(BETA_HOST), token), method)(path, {}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


def test_a_staff_user_sees_users_and_memberships_in_the_admin(
    alpha: Community, member: Callable[..., User], client_for: Callable[[str], APIClient]
) -> None:
    staff = member(alpha, "owner", is_staff=True, is_superuser=True)
    client = client_for("localhost")
    client.force_login(staff)

    users = client.get("/admin/security/user/")
    memberships = client.get("/admin/security/membership/")
    communities = client.get("/admin/tenants/community/")

    assert users.status_code == memberships.status_code == communities.status_code == 200
    assert staff.email in users.content.decode()
    assert "argon2" not in client.get(f"/admin/security/user/{staff.pk}/change/").content.decode()
    assert "alpha" in communities.content.decode()
