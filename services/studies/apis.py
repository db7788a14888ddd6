"""Study routes: ``/api/v1/studies/`` and ``/api/v1/studies/{id}/``. Studies carry no PHI.

Each view parses its input, calls one selector or action, and serializes the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

from core.contract import ProblemCodes
from core.pagination import paginated_response
from core.serializers import StrictSerializer
from policy.views import PolicyResource, PolicyView
from security.identity.authentication import claims_of
from services.common import CleanCharField, CreatedCursor, PastDateField, etag, require_current
from services.studies.actions import study_create, study_update
from services.studies.errors import StudyErrorCode
from services.studies.models import Study, StudyStatus
from services.studies.selectors import access_study, policy_attributes, study_list
from tenants.context import community_required

# What a 164.528(b)(4) summary of research under a waiver says of the study.
RESEARCH_CONTACT_FIELDS = [
    "research_purpose",
    "phi_types",
    "sponsor_name",
    "sponsor_address",
    "sponsor_phone",
    "researcher_name",
    "researcher_address",
    "researcher_phone",
]
PROTOCOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/\-]{0,63}$"


class StudySerializer(serializers.ModelSerializer[Study]):
    """A study as the API shows it; ``team`` lists the user ids assigned to it."""

    team = serializers.SerializerMethodField()

    class Meta:
        model = Study
        fields: ClassVar[list[str]] = [
            "id",
            "title",
            "protocol_number",
            "irb_approval_number",
            "irb_approval_date",
            "irb_waiver_number",
            "irb_waiver_date",
            "irb_waiver_recorded_at",
            *RESEARCH_CONTACT_FIELDS,
            "status",
            "team",
            "created_at",
            "updated_at",
        ]

    def get_team(self, study: Study) -> list[str]:
        """The team's user ids."""
        return [str(member.user_id) for member in study.team.all()]


class StudyInput(StrictSerializer):
    """What a client may set on a study."""

    title = CleanCharField(min_length=1, max_length=300)
    protocol_number = serializers.RegexField(PROTOCOL_PATTERN)
    irb_approval_number = CleanCharField(max_length=64, allow_blank=True, required=False)
    irb_approval_date = PastDateField(min_year=1970, required=False, allow_null=True)
    irb_waiver_number = CleanCharField(max_length=64, allow_blank=True, required=False)
    irb_waiver_date = PastDateField(min_year=1970, required=False, allow_null=True)
    research_purpose = CleanCharField(max_length=4000, allow_blank=True, required=False, multiline=True)
    phi_types = CleanCharField(max_length=2000, allow_blank=True, required=False, multiline=True)
    sponsor_name = CleanCharField(max_length=200, allow_blank=True, required=False)
    sponsor_address = CleanCharField(max_length=500, allow_blank=True, required=False, multiline=True)
    sponsor_phone = CleanCharField(max_length=64, allow_blank=True, required=False)
    researcher_name = CleanCharField(max_length=200, allow_blank=True, required=False)
    researcher_address = CleanCharField(max_length=500, allow_blank=True, required=False, multiline=True)
    researcher_phone = CleanCharField(max_length=64, allow_blank=True, required=False)
    status = serializers.ChoiceField(choices=StudyStatus.choices, required=False)
    team = serializers.ListField(child=serializers.UUIDField(), max_length=200, required=False)


def _response(study: Study, code: int = status.HTTP_200_OK) -> Response:
    return Response(StudySerializer(study).data, status=code, headers={"ETag": etag(study)})


class StudyListApi(PolicyView[None]):
    """``GET``: the community's studies (cursor pages, ``?status=``); ``POST``: a new study."""

    pagination_class: ClassVar[type[BasePagination] | None] = CreatedCursor
    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "study.list", "POST": "study.create"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "GET": {400: (StudyErrorCode.INVALID_FILTER,)},
        "POST": {409: (StudyErrorCode.DUPLICATE,)},
    }
    policy_resource_type = "study"
    policy_collection = True

    @extend_schema(responses={200: StudySerializer(many=True)})
    def get(self, request: Request) -> Response:
        """A page of studies."""
        return paginated_response(
            serializer_class=StudySerializer,
            queryset=study_list(status=request.query_params.get("status")),
            request=request,
            view=self,
        )

    @extend_schema(
        request=StudyInput,
        responses={201: StudySerializer},
        examples=[
            OpenApiExample(
                "A study under an IRB approval",
                request_only=True,
                value={"title": "Sleep and memory", "protocol_number": "SLP-2026-01",
                       "irb_approval_number": "IRB-2026-0042", "irb_approval_date": "2026-01-15"},
            )
        ],
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        """Create a study (a draft unless stated, which needs the IRB approval)."""
        data = StudyInput(data=request.data)
        data.is_valid(raise_exception=True)
        study = study_create(community=community_required(request), actor_id=_actor(request), **data.validated_data)
        return _response(study, status.HTTP_201_CREATED)


def _actor(request: Request) -> str:
    return str(claims_of(request).subject)


class StudyDetailApi(PolicyView[Study]):
    """``GET``: one study; ``PATCH`` with ``If-Match``: change it."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "study.read", "PATCH": "study.update"}
    precondition_methods: ClassVar[frozenset[str]] = frozenset({"PATCH"})
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {"PATCH": {409: (StudyErrorCode.STUDY_CLOSED,)}}
    policy_resource_type = "study"
    policy_deny_as_not_found = True

    def policy_resource(self, request: Request) -> PolicyResource[Study]:
        """The study itself (break-glass grants may name it); an unknown id is an audited 404."""
        study = access_study(
            study_id=self.kwargs["pk"], action=str(self.policy_action(request)), for_update=request.method == "PATCH"
        )
        return PolicyResource(study, policy_attributes(study))

    @extend_schema(responses={200: StudySerializer})
    def get(self, request: Request, pk: Any) -> Response:
        """The study, with its ETag."""
        return _response(self.resource)

    @extend_schema(request=StudyInput(partial=True), responses={200: StudySerializer})
    def patch(self, request: Request, pk: Any) -> Response:
        """Change the fields sent; the ETag read must still be current."""
        require_current(request, self.resource)
        data = StudyInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        study = study_update(
            study=self.resource,
            community=community_required(request),
            changes=data.validated_data,
            actor_id=_actor(request),
        )
        return _response(study)
