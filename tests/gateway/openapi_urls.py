"""Test-only routes for the schema's deprecation: one operation deprecated, one past its sunset."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import ClassVar

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response

from config.urls_tenant import urlpatterns as tenant_urlpatterns
from core.contract import Deprecation
from policy.views import PolicyView

SUCCESSOR = "/api/v1/studies/"


class DeprecatedProbe(PolicyView[None]):
    """A read on its way out."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "study.list"}
    policy_collection = True
    deprecations: ClassVar[Mapping[str, Deprecation]] = {
        "GET": Deprecation(since=date(2026, 1, 1), sunset=date(2099, 1, 1), successor=SUCCESSOR)
    }

    def get(self, request: Request) -> Response:
        """Served until its sunset."""
        return Response({"served": True})


class RetiredProbe(DeprecatedProbe):
    """A read past its sunset."""

    deprecations: ClassVar[Mapping[str, Deprecation]] = {
        "GET": Deprecation(since=date(2025, 1, 1), sunset=date(2025, 6, 1), successor=SUCCESSOR)
    }


urlpatterns = [
    path("api/v1/probe/deprecated/", DeprecatedProbe.as_view(), name="probe-deprecated"),
    path("api/v1/probe/retired/", RetiredProbe.as_view(), name="probe-retired"),
    *tenant_urlpatterns,
]
