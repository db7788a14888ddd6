"""Resolve the community from the Host header and switch to its schema.

Replaces django-tenants' ``TenantMainMiddleware``: platform hosts
(``PUBLIC_HOSTS``) get the public schema and URLconf; a community's domain gets
its schema and the tenant URLconf; any other host is a 404 problem. A
suspended community refuses every request but health probes (403
``community_suspended``); an offboarded one no longer exists (404).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.urls import set_urlconf

from core.http import HEALTH_PREFIX
from core.problems import problem_response
from core.schema import use_community_schema, use_public_schema
from tenants.context import community_set
from tenants.errors import CommunityErrorCode
from tenants.hosts import community_for_host
from tenants.models import CommunityStatus


class CommunityMiddleware:
    """Bind each request to exactly one community (or to the platform)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Route the request to the platform or to one community's schema."""
        use_public_schema()
        try:
            host = request.get_host().rsplit(":", 1)[0].lower()
        except DisallowedHost:
            return problem_response(
                request, status=400, code=CommunityErrorCode.INVALID_HOST, detail="The Host header is not served."
            )
        # Platform hosts carry no ``request.tenant`` at all (django-tenants' admin templates
        # read its absence as "public schema").
        if host in settings.PUBLIC_HOSTS:
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
            set_urlconf(settings.PUBLIC_SCHEMA_URLCONF)
            return self.get_response(request)
        return self._serve_community(request, host)

    def _serve_community(self, request: HttpRequest, host: str) -> HttpResponse:
        community = community_for_host(host)
        if community is None or community.status == CommunityStatus.OFFBOARDED:
            return problem_response(
                request, status=404, code=CommunityErrorCode.UNKNOWN_HOST, detail="No community is served at this host."
            )
        if community.status == CommunityStatus.SUSPENDED and not request.path.startswith(HEALTH_PREFIX):
            return problem_response(
                request, status=403, code=CommunityErrorCode.SUSPENDED, detail="This community is suspended."
            )
        community.domain_url = host
        community_set(request, community)
        use_community_schema(community)
        try:
            return self.get_response(request)
        finally:
            use_public_schema()
