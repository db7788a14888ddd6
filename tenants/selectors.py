"""Reads of communities (public schema)."""

from __future__ import annotations

from django.db.models import QuerySet

from core.errors import NotFound
from tenants.errors import CommunityErrorCode
from tenants.models import Community


def community_list() -> QuerySet[Community]:
    """Every community with its domains, ordered by slug."""
    return Community.objects.prefetch_related("domains").order_by("slug")


def community_get(*, slug: str, for_update: bool = False) -> Community:
    """Return the community with this slug, or raise :class:`NotFound`."""
    queryset = Community.objects.select_for_update() if for_update else Community.objects.all()
    try:
        return queryset.get(slug=slug)
    except Community.DoesNotExist:
        raise NotFound(f"no community with slug '{slug}'", code=CommunityErrorCode.NOT_FOUND) from None
