"""Every route is guarded by policy or on the one reviewed public list."""

from __future__ import annotations

from policy.routes import PLATFORM_ONLY_ROUTES, PUBLIC_ROUTES, unguarded_routes, walk


def test_every_community_route_is_guarded_or_reviewed_public() -> None:
    assert unguarded_routes("config.urls_tenant") == []


def test_every_platform_route_is_guarded_or_reviewed_public() -> None:
    assert unguarded_routes("config.urls_public") == []


def test_the_public_list_is_short_and_names_only_credential_probe_and_doc_routes() -> None:
    assert set(PUBLIC_ROUTES) == {
        "auth-token",
        "auth-refresh",
        "jwks",
        "audit-keys",
        "health-live",
        "health-ready",
        "api-schema",
        "api-docs",
    }
    names = {route.name for route in walk("config.urls_tenant")}
    assert set(PUBLIC_ROUTES) <= names


def test_the_platform_only_list_names_the_metrics_scrape_and_no_community_serves_it() -> None:
    assert set(PLATFORM_ONLY_ROUTES) == {"metrics"}
    community = {route.name for route in walk("config.urls_tenant")}
    platform = {route.name for route in walk("config.urls_public")}
    assert set(PLATFORM_ONLY_ROUTES) <= platform
    assert not set(PLATFORM_ONLY_ROUTES) & community


def test_an_unguarded_route_is_caught() -> None:
    caught = {route.name for route in unguarded_routes("tests.policy.unguarded_urls")}

    # "jwks" is a public name, but not served by the reviewed view: caught too.
    assert caught == {"forgotten", "half", "plain", "jwks"}


def test_the_identity_routes_are_guarded() -> None:
    guarded = {route.name for route in walk("config.urls_tenant")} - set(PUBLIC_ROUTES)

    assert {"me", "auth-logout", "auth-mfa-totp", "auth-mfa-totp-confirm"} <= guarded
