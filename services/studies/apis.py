"""Study routes: ``/api/v1/studies/`` and ``/api/v1/studies/{id}/``. Studies carry no PHI."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import IntegrityError, transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import BadRequest, Conflict
from core.serializers import StrictSerializer
from security.selectors import active_member
from services.common import CleanCharField, CreatedCursor, PastDateField, etag, missing, require_current
from services.studies.models import Study, StudyStatus, StudyTeamMember

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
    status = serializers.ChoiceField(choices=StudyStatus.choices, required=False)
    team = serializers.ListField(child=serializers.UUIDField(), max_length=200, required=False)


def _check_team(request: Request, team: list[Any]) -> None:
    strangers = [str(user) for user in team if active_member(user_id=user, community=request.tenant) is None]  # type: ignore[attr-defined]
    if strangers:
        raise serializers.ValidationError({"team": [f"Not a member of this community: {user}" for user in strangers]})


def _check_status(study: Study, values: dict[str, Any]) -> None:
    if study.status == StudyStatus.CLOSED and values.get("status", StudyStatus.CLOSED) != StudyStatus.CLOSED:
        raise Conflict("A closed study cannot be reopened.", code="study_closed")
    target = values.get("status", study.status)
    approval = values.get("irb_approval_number", study.irb_approval_number)
    approved_on = values.get("irb_approval_date", study.irb_approval_date)
    if target == StudyStatus.ACTIVE and not (approval and approved_on):
        raise serializers.ValidationError(
            {"status": ["A study becomes active only with irb_approval_number and irb_approval_date."]}
        )


def _save(request: Request, study: Study, values: dict[str, Any]) -> Study:
    team = values.pop("team", None)
    _check_status(study, values)
    if team is not None:
        _check_team(request, team)
    for name, value in values.items():
        setattr(study, name, value)
    try:
        with transaction.atomic():
            study.save()
    except IntegrityError:
        raise Conflict("Another study of this community has that protocol number.", code="duplicate") from None
    if team is not None:
        study.team.exclude(user_id__in=team).delete()
        for user in team:
            StudyTeamMember.objects.get_or_create(study=study, user_id=user)
    return study


def _response(study: Study, code: int = status.HTTP_200_OK) -> Response:
    return Response(StudySerializer(study).data, status=code, headers={"ETag": etag(study)})


class StudyListApi(APIView):
    """``GET``: the community's studies (cursor pages, ``?status=``); ``POST``: a new study."""

    policy_actions: ClassVar[dict[str, str]] = {"GET": "study.list", "POST": "study.create"}
    policy_resource_type = "study"
    policy_collection = True

    @extend_schema(responses={200: StudySerializer(many=True)})
    def get(self, request: Request) -> Response:
        """A page of studies."""
        studies = Study.objects.prefetch_related("team").order_by()
        wanted = request.query_params.get("status")
        if wanted is not None:
            if wanted not in StudyStatus.values:
                raise BadRequest(f"status must be one of: {', '.join(StudyStatus.values)}", code="invalid_filter")
            studies = studies.filter(status=wanted)
        paginator = CreatedCursor()
        page = paginator.paginate_queryset(studies, request, view=self)
        return paginator.get_paginated_response(StudySerializer(page, many=True).data)

    @extend_schema(request=StudyInput, responses={201: StudySerializer})
    def post(self, request: Request) -> Response:
        """Create a study (a draft unless stated, which needs the IRB approval)."""
        data = StudyInput(data=request.data)
        data.is_valid(raise_exception=True)
        study = _save(request, Study(), dict(data.validated_data))
        return _response(study, status.HTTP_201_CREATED)


class StudyDetailApi(APIView):
    """``GET``: one study; ``PATCH`` with ``If-Match``: change it."""

    policy_actions: ClassVar[dict[str, str]] = {"GET": "study.read", "PATCH": "study.update"}
    policy_resource_type = "study"
    policy_deny_as_not_found = True

    def policy_resource_attributes(self, request: Request) -> dict[str, Any]:
        """The study itself (break-glass grants may name it); an unknown id is an audited 404."""
        studies = Study.objects.select_for_update() if request.method == "PATCH" else Study.objects.all()
        found = studies.filter(pk=self.kwargs["pk"]).first()
        if found is None:
            raise missing(self.policy_actions[request.method or "GET"], "study", self.kwargs["pk"], what="study")
        self.study = found
        return {"study": str(found.pk)}

    @extend_schema(responses={200: StudySerializer})
    def get(self, request: Request, pk: Any) -> Response:
        """The study, with its ETag."""
        return _response(self.study)

    @extend_schema(request=StudyInput(partial=True), responses={200: StudySerializer})
    def patch(self, request: Request, pk: Any) -> Response:
        """Change the fields sent; the ETag read must still be current."""
        study = self.study
        require_current(request, study)
        data = StudyInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return _response(_save(request, study, dict(data.validated_data)))
