"""``/api/v1/break-glass/``: open emergency access (a member with a recent second factor), end it, review its uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import BadRequest
from core.serializers import StrictSerializer
from policy.views import PolicyResource, PolicyView
from security.audit.models import AuditEvent
from security.breakglass.actions import grant_open, grant_review, grant_revoke
from security.breakglass.errors import BreakGlassErrorCode
from security.breakglass.models import BreakGlassGrant
from security.breakglass.selectors import grant_attributes, review_queue
from security.identity.authentication import claims_of
from tenants.context import community_required


class GrantSerializer(serializers.ModelSerializer[BreakGlassGrant]):
    """A grant as its holder and reviewers see it; the reason is shown to them alone."""

    reason = serializers.CharField(read_only=True)  # read through the model, which opens the sealed text
    uses = serializers.SerializerMethodField()

    class Meta:
        model = BreakGlassGrant
        fields: ClassVar[list[str]] = [
            "id",
            "user_id",
            "scope",
            "scope_id",
            "reason",
            "created_at",
            "expires_at",
            "notified_at",
            "revoked_at",
            "revoked_by",
            "reviewed_at",
            "reviewed_by",
            "review_comment",
            "uses",
        ]

    def get_uses(self, grant: BreakGlassGrant) -> list[dict[str, Any]]:
        """The flagged accesses made while the grant was active (audit sequence, time, action, resource)."""
        events = AuditEvent.objects.filter(
            actor_id=str(grant.user_id),
            break_glass=True,
            occurred_at__gte=grant.created_at,
            occurred_at__lte=grant.ends_at,
        ).values("sequence", "occurred_at", "action", "resource_type", "resource_id", "outcome")
        return [dict(event) for event in events[:500]]


class BreakGlassApi(PolicyView[None]):
    """``POST``: open a grant over one participant or one study; ``GET``: the review queue."""

    policy_actions: ClassVar[Mapping[str, str]] = {"POST": "break_glass.activate", "GET": "break_glass.review"}
    policy_resource_type = "break_glass"
    policy_collection = True

    @extend_schema_serializer(component_name="BreakGlassRequest")
    class InputSerializer(StrictSerializer):
        reason = serializers.CharField(min_length=10, max_length=2000)
        participant = serializers.UUIDField(required=False)
        study = serializers.UUIDField(required=False)
        minutes = serializers.IntegerField(min_value=1, required=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            """Cross-field checks."""
            if ("participant" in attrs) == ("study" in attrs):
                raise serializers.ValidationError("Name exactly one of participant and study.")
            minutes = attrs.setdefault("minutes", settings.BREAK_GLASS_DEFAULT_MINUTES)
            if minutes > settings.BREAK_GLASS_MAX_MINUTES:
                raise serializers.ValidationError({"minutes": f"at most {settings.BREAK_GLASS_MAX_MINUTES}"})
            return attrs

    @extend_schema(request=InputSerializer, responses={201: GrantSerializer})
    def post(self, request: Request) -> Response:
        """Open the grant; compliance officers are told at once."""
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        scope = "participant" if "participant" in data else "study"
        grant = grant_open(
            user_id=str(claims_of(request).subject),
            scope=scope,
            scope_id=str(data[scope]),
            reason=data["reason"],
            minutes=data["minutes"],
            community=community_required(request).slug,
        )
        return Response(GrantSerializer(grant).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: GrantSerializer(many=True)})
    def get(self, request: Request) -> Response:
        """Grants, newest first; ``?reviewed=false`` is the queue awaiting review."""
        flag = request.query_params.get("reviewed")
        if flag not in (None, "true", "false"):
            raise BadRequest("reviewed must be true or false", code=BreakGlassErrorCode.INVALID_FILTER)
        grants = review_queue(reviewed=None if flag is None else flag == "true")[:200]
        return Response(GrantSerializer(grants, many=True).data)


class _OneGrant(PolicyView[None]):
    """A route on one grant: the policy sees its holder, and a grant the caller may not act on looks missing."""

    policy_resource_type = "break_glass"
    policy_deny_as_not_found = True

    def policy_resource(self, request: Request) -> PolicyResource[None]:
        """The grant's holder; an unknown id is an audited 404."""
        attributes = grant_attributes(grant_id=self.kwargs["pk"], action=str(self.policy_action(request)))
        return PolicyResource(None, attributes)


class BreakGlassRevokeApi(_OneGrant):
    """``POST /api/v1/break-glass/{id}/revoke/``: the grant's holder or a compliance officer ends it now."""

    policy_actions: ClassVar[Mapping[str, str]] = {"POST": "break_glass.revoke"}

    @extend_schema(request=None, responses={200: GrantSerializer})
    def post(self, request: Request, pk: Any) -> Response:
        """End the grant; 409 when it has ended already."""
        claims = claims_of(request)
        grant = grant_revoke(grant_id=str(pk), revoker=str(claims.subject), revoker_roles=list(claims.roles))
        return Response(GrantSerializer(grant).data)


class BreakGlassReviewApi(_OneGrant):
    """``POST /api/v1/break-glass/{id}/review/``: a compliance officer, not its holder, reviews an ended grant."""

    policy_actions: ClassVar[Mapping[str, str]] = {"POST": "break_glass.review"}

    @extend_schema_serializer(component_name="BreakGlassReview")
    class InputSerializer(StrictSerializer):
        comment = serializers.CharField(min_length=1, max_length=2000)

    @extend_schema(request=InputSerializer, responses={200: GrantSerializer})
    def post(self, request: Request, pk: Any) -> Response:
        """Record the review (403 for the grant's own holder, 409 while it is still active)."""
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        grant = grant_review(
            grant_id=str(pk),
            reviewer=str(claims_of(request).subject),
            comment=payload.validated_data["comment"],
        )
        return Response(GrantSerializer(grant).data)
