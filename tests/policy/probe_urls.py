"""Test-only routes guarded by the real policy permission, to exercise every rule end to end.

Each probe answers with the decision it got, so tests can see obligations.
The consent scopes of the probed participant come from a query parameter
(the research APIs will read them from the participant's consents).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls_tenant import urlpatterns as tenant_urlpatterns
from policy.context import decision_of
from policy.views import PolicyResource, PolicyView


class Probe(PolicyView[None]):
    """Answers with the decision the permission left on the request."""

    def get(self, request: Request, **kwargs: Any) -> Response:
        decision = decision_of(request)
        return Response(
            {
                "allowed": decision.allow,
                "reasons": list(decision.reasons),
                "redact": list(decision.obligations.redact),
                "audit": decision.obligations.audit,
                "conditions": decision.obligations.conditions,
                "decision_id": decision.decision_id,
            }
        )


class ParticipantProbe(Probe):
    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "participant.read"}
    policy_deny_as_not_found = True

    def policy_resource(self, request: Request) -> PolicyResource[None]:
        scopes = request.query_params.get("consent", "")
        return PolicyResource(None, {"consent_scopes": [scope for scope in scopes.split(",") if scope]})


class ParticipantListProbe(Probe):
    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "participant.list"}
    policy_resource_type = "participant"
    policy_collection = True


class KeyRotationProbe(Probe):
    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "key.rotate"}
    policy_resource_type = "community"


class AuditProbe(Probe):
    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "audit.read"}
    policy_collection = True


class StudyWithoutIdProbe(Probe):
    """Misconfigured: an item route with no id in its URL."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "study.read"}


class UntypedContractApi(APIView):
    """The old contract: actions declared by attribute on a plain APIView. The permission must not honour it."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "participant.list"}
    policy_collection = True

    def get(self, request: Request) -> Response:
        return Response({"served": True})


urlpatterns = [
    path("api/v1/probe/untyped", UntypedContractApi.as_view(), name="probe-untyped"),
    path("api/v1/probe/participants/<uuid:pk>", ParticipantProbe.as_view(), name="probe-participant"),
    path("api/v1/probe/participants", ParticipantListProbe.as_view(), name="probe-participants"),
    path("api/v1/probe/keys/rotate", KeyRotationProbe.as_view(), name="probe-key-rotation"),
    path("api/v1/probe/audit", AuditProbe.as_view(), name="probe-audit"),
    path("api/v1/probe/study", StudyWithoutIdProbe.as_view(), name="probe-study-without-id"),
    *tenant_urlpatterns,
]
