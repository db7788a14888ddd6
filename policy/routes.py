"""Which routes are guarded by policy, and the one reviewed list of routes that are not.

``unguarded_routes()`` walks a URLconf; a test runs it on both URLconfs and
fails on anything neither guarded nor listed here. Adding to this list is a
security review decision.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

from policy.permissions import PolicyPermission
from policy.views import PolicyView

# Reviewed: reachable without a policy decision, which view serves it, and why.
PUBLIC_ROUTES: dict[str, tuple[str, str]] = {
    "auth-token": ("security.apis.TokenApi", "signing in is how a caller gets a subject to decide about"),
    "auth-refresh": ("security.apis.RefreshApi", "a refresh token is its own credential, checked by the sessions"),
    "jwks": ("security.apis.JwksApi", "public keys, meant to be public"),
    "audit-keys": ("security.audit.apis.AuditKeysApi", "audit public keys: auditors obtain them without an account"),
    "health-live": ("gateway.health.live", "probe for orchestrators, reveals nothing"),
    "health-ready": ("gateway.health.ready", "probe for orchestrators, reveals dependency status only"),
    "api-schema": ("drf_spectacular.views.SpectacularAPIView", "the OpenAPI description, no data"),
    "api-docs": ("drf_spectacular.views.SpectacularSwaggerSplitView", "the Swagger UI page, no data"),
}
# Reviewed like the list above, and served on the platform host only (never a community's): each guards itself.
PLATFORM_ONLY_ROUTES: dict[str, tuple[str, str]] = {
    "metrics": ("gateway.metrics.metrics_view", "operators' scrape: METRICS_TOKEN bearer, no id or PHI in a label"),
}
# The Django admin (platform host only) is guarded by staff sign-in with a second factor.
PUBLIC_PREFIXES: dict[str, str] = {"admin/": "Django admin: staff accounts with a second factor"}

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Route:
    """One route of a URLconf and the view behind it."""

    path: str
    name: str | None
    view: Any


def walk(urlconf: str) -> Iterator[Route]:
    """Every route of ``urlconf``, with its full path."""

    def visit(patterns: list[Any], prefix: str) -> Iterator[Route]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from visit(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield Route(path=prefix + str(pattern.pattern), name=pattern.name, view=pattern.callback)

    yield from visit(get_resolver(urlconf).url_patterns, "")


def is_guarded(view: Any) -> bool:
    """A :class:`PolicyView` whose permissions include PolicyPermission and which declares an action per method."""
    view_class = getattr(view, "view_class", None) or getattr(view, "cls", None)
    if not (isinstance(view_class, type) and issubclass(view_class, PolicyView)):
        return False
    initkwargs = getattr(view, "view_initkwargs", {}) or {}
    permissions = initkwargs.get("permission_classes", view_class.permission_classes)
    if PolicyPermission not in permissions:
        return False
    methods = [method for method in HTTP_METHODS if hasattr(view_class, method.lower())]
    return bool(methods) and all(view_class.declared_action(method) for method in methods)


def view_path(view: Any) -> str:
    """The dotted path of the class (or function) behind a route."""
    target = getattr(view, "view_class", None) or getattr(view, "cls", None) or view
    return f"{target.__module__}.{target.__qualname__}"


def is_reviewed_public(route: Route) -> bool:
    """On the public list by name *and* served by the view the list names."""
    reviewed = PUBLIC_ROUTES.get(route.name or "") or PLATFORM_ONLY_ROUTES.get(route.name or "")
    if reviewed is not None:
        return view_path(route.view) == reviewed[0]
    return any(route.path.startswith(prefix) for prefix in PUBLIC_PREFIXES)


def unguarded_routes(urlconf: str) -> list[Route]:
    """Routes neither guarded by policy nor on the reviewed public list."""
    return [route for route in walk(urlconf) if not is_guarded(route.view) and not is_reviewed_public(route)]
