"""``/api/v1/break-glass/``: open emergency access (a member with a recent second factor), end it, review its uses.

The queue (``GET``) shows each grant in words (:mod:`security.breakglass.words`)
with its alarms; ``?alarm=true`` keeps the alarmed, ``?format=csv`` is the
officer's review file (``break_glass.export``: it leaves the service).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from django.conf import settings
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.contract import ProblemCodes
from core.serializers import StrictSerializer, query_choice
from policy.views import PolicyResource, PolicyView
from security.breakglass.actions import grant_open, grant_review, grant_revoke
from security.breakglass.errors import BreakGlassErrorCode
from security.breakglass.models import AlarmCode, BreakGlassGrant
from security.breakglass.selectors import Person, grant_attributes, people, review_queue
from security.breakglass.words import Ending, GrantWords, grants_in_words, queue_csv
from security.identity.authentication import claims_of
from tenants.context import community_required


class PersonSerializer(serializers.Serializer[Person]):
    """Someone the queue names: their id and name (today their email)."""

    user_id = serializers.CharField()
    name = serializers.CharField()


class EndingSerializer(serializers.Serializer[Ending]):
    """How a grant ended: ``active``, ``expired`` or ``revoked`` (when, and by whom)."""

    how = serializers.ChoiceField(choices=["active", "expired", "revoked"])
    at = serializers.DateTimeField(allow_null=True)
    by = PersonSerializer(allow_null=True)


class UseSerializer(serializers.Serializer[dict[str, Any]]):
    """One use of a grant: when, what (in the policy's words), whose record (by pseudonym), and what came of it."""

    sequence = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    action = serializers.CharField()
    description = serializers.CharField()
    participants = serializers.ListField(child=serializers.CharField())
    resource_type = serializers.CharField()
    resource_id = serializers.CharField()
    outcome = serializers.ChoiceField(choices=["allow", "deny"])
    http_status = serializers.IntegerField()


class GrantSerializer(serializers.ModelSerializer[BreakGlassGrant]):
    """A grant as its holder and reviewers see it, with what it means in words; the reason is shown to them alone.

    The words come in the context (``words``: :func:`grants_in_words` of the grants serialized).
    """

    reason = serializers.CharField(read_only=True)  # read through the model, which opens the sealed text
    holder = serializers.SerializerMethodField()
    covers = serializers.SerializerMethodField()
    minutes = serializers.SerializerMethodField()
    ended = serializers.SerializerMethodField()
    alarms = serializers.SerializerMethodField()
    uses = serializers.SerializerMethodField()
    uses_truncated = serializers.SerializerMethodField()
    summary = serializers.SerializerMethodField()

    class Meta:
        model = BreakGlassGrant
        fields: ClassVar[list[str]] = [
            "id",
            "user_id",
            "holder",
            "scope",
            "scope_id",
            "covers",
            "reason",
            "created_at",
            "expires_at",
            "minutes",
            "ended",
            "notified_at",
            "revoked_at",
            "revoked_by",
            "reviewed_at",
            "reviewed_by",
            "review_comment",
            "alarms",
            "summary",
            "uses",
            "uses_truncated",
        ]

    def _words(self, grant: BreakGlassGrant) -> GrantWords:
        words: GrantWords = self.context["words"][str(grant.id)]
        return words

    @extend_schema_field(PersonSerializer)
    def get_holder(self, grant: BreakGlassGrant) -> dict[str, Any]:
        """Who held the grant."""
        return dict(PersonSerializer(self._words(grant).holder).data)

    def get_covers(self, grant: BreakGlassGrant) -> str:
        """What the grant covered: ``one participant, P-…`` or the study."""
        return self._words(grant).covers

    def get_minutes(self, grant: BreakGlassGrant) -> int:
        """How many minutes it ran (so far, while active)."""
        return self._words(grant).minutes

    @extend_schema_field(EndingSerializer)
    def get_ended(self, grant: BreakGlassGrant) -> dict[str, Any]:
        """How it ended."""
        return dict(EndingSerializer(self._words(grant).ended).data)

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=AlarmCode.values)))
    def get_alarms(self, grant: BreakGlassGrant) -> list[str]:
        """The alarms it raises now (``review_overdue``, ``not_notified``, ``no_one_to_notify``)."""
        return [str(code) for code in self._words(grant).alarms]

    @extend_schema_field(UseSerializer(many=True))
    def get_uses(self, grant: BreakGlassGrant) -> list[dict[str, Any]]:
        """The accesses made under the grant, oldest first (at most 500)."""
        return [dict(use) for use in UseSerializer(self._words(grant).uses, many=True).data]  # type: ignore[arg-type]  # many=True takes a list; the stubs type the one-object form

    def get_uses_truncated(self, grant: BreakGlassGrant) -> bool:
        """Whether it had more uses than are shown."""
        return self._words(grant).uses_truncated

    def get_summary(self, grant: BreakGlassGrant) -> str:
        """The grant in one or two sentences."""
        return self._words(grant).summary


def grants_data(request: Request, grants: Sequence[BreakGlassGrant]) -> list[dict[str, Any]]:
    """``grants`` serialized with their words, for the community of ``request``."""
    words = grants_in_words(grants, community=community_required(request), now=timezone.now())
    return list(GrantSerializer(grants, many=True, context={"words": words}).data)


def _queue_file(request: Request, grants: Sequence[BreakGlassGrant]) -> StreamingHttpResponse:
    words = grants_in_words(grants, community=community_required(request), now=timezone.now())
    reviewers = people(grant.reviewed_by for grant in grants)
    response = StreamingHttpResponse(queue_csv(grants, words, reviewers), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="break-glass-review.csv"'
    return response


def grant_data(request: Request, grant: BreakGlassGrant) -> dict[str, Any]:
    """One grant serialized with its words."""
    return grants_data(request, [grant])[0]


QUEUE_FORMATS = ("json", "csv")
READS = frozenset({"GET", "HEAD"})  # HEAD is answered by get(): it is asked as the same action


def _flag(request: Request, name: str) -> bool | None:
    flag = query_choice(request, name, ("true", "false"), code=BreakGlassErrorCode.INVALID_FILTER)
    return None if flag is None else flag == "true"


class BreakGlassApi(PolicyView[None]):
    """``POST``: open a grant over one participant or one study; ``GET``: the review queue."""

    policy_actions: ClassVar[Mapping[str, str]] = {"POST": "break_glass.activate", "GET": "break_glass.review"}
    operation_ids: ClassVar[Mapping[str, str]] = {"GET": "breakGlassList", "POST": "breakGlassCreate"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "GET": {400: (BreakGlassErrorCode.INVALID_FILTER, BreakGlassErrorCode.INVALID_FORMAT)},
        "POST": {404: (BreakGlassErrorCode.NOT_FOUND,)},
    }
    # The CSV file leaves the service: an export, with a recent second factor.
    policy_format_actions: ClassVar[Mapping[str, str]] = {"csv": "break_glass.export"}
    policy_resource_type = "break_glass"
    policy_collection = True

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """Refuse an unknown format before anything else (authentication included) is done."""
        if request.method in READS:
            query_choice(request, "format", QUEUE_FORMATS, code=BreakGlassErrorCode.INVALID_FORMAT)
        super().initial(request, *args, **kwargs)

    @extend_schema_serializer(component_name="BreakGlassRequest")
    class InputSerializer(StrictSerializer):
        reason = serializers.CharField(min_length=10, max_length=2000)
        participant = serializers.UUIDField(required=False)
        study = serializers.UUIDField(required=False)
        minutes = serializers.IntegerField(min_value=1, max_value=settings.BREAK_GLASS_MAX_MINUTES, required=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            """Cross-field checks."""
            if ("participant" in attrs) == ("study" in attrs):
                raise serializers.ValidationError(
                    "Name exactly one of participant and study.", code=BreakGlassErrorCode.EXACTLY_ONE
                )
            attrs.setdefault("minutes", settings.BREAK_GLASS_DEFAULT_MINUTES)
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
        return Response(grant_data(request, grant), status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[
            OpenApiParameter("reviewed", bool, description="only reviewed (true) or unreviewed (false) grants"),
            OpenApiParameter("alarm", bool, description="only grants that raise an alarm (true) or none (false)"),
            OpenApiParameter("format", str, enum=list(QUEUE_FORMATS), description="csv: a file, one row per use"),
        ],
        responses={200: GrantSerializer(many=True), (200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request: Request) -> Response | StreamingHttpResponse:
        """Grants, newest first; ``?reviewed=false`` is the queue awaiting review, ``?alarm=true`` the alarmed ones.

        Both queues are oldest first, so the 200 shown are the longest waiting.
        """
        grants = list(review_queue(reviewed=_flag(request, "reviewed"), alarm=_flag(request, "alarm"))[:200])
        if request.query_params.get("format") == "csv":
            return _queue_file(request, grants)
        return Response(grants_data(request, grants))


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
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {"POST": {409: (BreakGlassErrorCode.ALREADY_ENDED,)}}

    @extend_schema(request=None, responses={200: GrantSerializer})
    def post(self, request: Request, pk: Any) -> Response:
        """End the grant; 409 when it has ended already."""
        claims = claims_of(request)
        grant = grant_revoke(grant_id=str(pk), revoker=str(claims.subject), revoker_roles=list(claims.roles))
        return Response(grant_data(request, grant))


class BreakGlassReviewApi(_OneGrant):
    """``POST /api/v1/break-glass/{id}/review/``: a compliance officer, not its holder, reviews an ended grant."""

    policy_actions: ClassVar[Mapping[str, str]] = {"POST": "break_glass.review"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "POST": {
            403: (BreakGlassErrorCode.SELF_REVIEW,),
            409: (BreakGlassErrorCode.ALREADY_REVIEWED, BreakGlassErrorCode.STILL_ACTIVE),
        }
    }

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
        return Response(grant_data(request, grant))
