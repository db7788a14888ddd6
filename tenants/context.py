"""Which community a request is served in, read through one typed accessor.

:class:`~tenants.middleware.CommunityMiddleware` binds each request on a
community's host to its community as ``request.tenant`` (django-tenants' own
attribute, which its admin templates read too); everything else asks
:func:`community_of`.
"""

from __future__ import annotations

from django.http import HttpRequest
from rest_framework.request import Request

from core.errors import ServiceUnavailable
from tenants.errors import CommunityErrorCode
from tenants.models import Community

_ATTRIBUTE = "tenant"  # django-tenants' name


class CommunityRequired(ServiceUnavailable):
    """Code that needs a community ran without one: a configuration error, refused (503), never served."""

    def __init__(self) -> None:
        super().__init__("This request cannot be served right now.", code=CommunityErrorCode.NO_COMMUNITY)


def community_set(request: HttpRequest, community: Community) -> None:
    """Bind ``request`` to ``community`` (the community middleware, once per request)."""
    setattr(request, _ATTRIBUTE, community)


def community_of(request: HttpRequest | Request) -> Community | None:
    """The community ``request`` is served in; ``None`` on a platform host."""
    community = getattr(request, _ATTRIBUTE, None)
    return community if isinstance(community, Community) else None


def community_required(request: HttpRequest | Request) -> Community:
    """The community ``request`` is served in, where one must be (a guarded route has one by now).

    Raises:
        CommunityRequired: there is none (a configuration error): fail closed.
    """
    community = community_of(request)
    if community is None:
        raise CommunityRequired
    return community
