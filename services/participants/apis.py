"""Participant routes: enrolment, reads (redacted as the policy says), updates, the accounting of disclosures.

PHI lives only in encrypted columns and leaves only through
:class:`ParticipantSerializer`, which applies the decision's redaction. A list
read of PHI is narrowed to participants whose consent covers the stated
purpose (the policy's ``consent_scope`` condition); a single read outside the
consent is refused with the reason. Every read names the participants it
touched, for their accounting of disclosures.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import transaction
from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import BadRequest, Conflict, NotFound
from policy.obligations import REDACT_ALL, apply_conditions
from security.audit.context import note_participants
from security.audit.disclosures import disclosures, disclosures_csv
from services.common import CreatedCursor, etag, missing, require_current
from services.participants.models import Participant
from services.participants.selectors import (
    consented,
    mrn_taken,
    participant_pseudonym,
    participants,
    policy_attributes,
)
from services.participants.serializers import ParticipantInput, ParticipantQuery, ParticipantSerializer
from services.studies.models import Study


def _field_error(field: str, message: str) -> serializers.ValidationError:
    return serializers.ValidationError({field: [message]})


def _represent(request: Request, participant: Participant) -> dict[str, Any]:
    return dict(ParticipantSerializer(participant, context={"request": request}).data)


def _save(participant: Participant, values: dict[str, Any]) -> Participant:
    """Apply validated values (study checked, MRN unique in the community) and save."""
    if "study" in values:
        study = Study.objects.filter(pk=values.pop("study")).first()
        if study is None:
            raise _field_error("study", "No such study in this community.")
        participant.study = study
    mrn = values.get("mrn")
    if mrn and mrn_taken(mrn, other_than=participant.pk if participant.pk and not participant._state.adding else None):
        raise Conflict("Another participant of this community has that MRN.", code="duplicate_mrn")
    for name, value in values.items():
        setattr(participant, name, value)
    participant.save()
    return participant


class ParticipantListApi(APIView):
    """``GET``: participants (``?study=``, ``?mrn=`` exact, cursor pages); ``POST``: enrol one."""

    policy_actions: ClassVar[dict[str, str]] = {"GET": "participant.list", "POST": "participant.create"}
    policy_resource_type = "participant"
    policy_collection = True

    @extend_schema(parameters=[ParticipantQuery], responses={200: ParticipantSerializer(many=True)})
    def get(self, request: Request) -> Response:
        """A page of participants, narrowed to the consent the purpose needs."""
        query = ParticipantQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        decision = request._request.policy_decision  # type: ignore[attr-defined]
        if "mrn" in query.validated_data and {"mrn", REDACT_ALL} & set(decision.obligations.redact):
            raise BadRequest("Searching by MRN needs an unredacted view of it.", code="filter_not_allowed")
        found = participants(study=query.validated_data.get("study"), mrn=query.validated_data.get("mrn"))
        found = apply_conditions(found, decision.obligations.conditions, {"consent_scope": consented})
        paginator = CreatedCursor()
        page = paginator.paginate_queryset(found, request, view=self) or []
        note_participants(participant.pseudonym for participant in page)
        # One serializer for the page: its fields are built once, not once per row.
        rows = ParticipantSerializer(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(list(rows))

    @extend_schema(request=ParticipantInput, responses={201: ParticipantSerializer})
    def post(self, request: Request) -> Response:
        """Enrol a participant (a new random pseudonym); 201 with the record and its ETag."""
        data = ParticipantInput(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            participant = _save(Participant(), dict(data.validated_data))
        note_participants([participant.pseudonym])
        headers = {"ETag": etag(participant), "Location": f"/api/v1/participants/{participant.pk}/"}
        return Response(_represent(request, participant), status=status.HTTP_201_CREATED, headers=headers)


class ParticipantDetailApi(APIView):
    """``GET``: one participant (PHI only under a covering consent); ``PATCH`` with ``If-Match``."""

    policy_actions: ClassVar[dict[str, str]] = {"GET": "participant.read", "PATCH": "participant.update"}
    policy_resource_type = "participant"
    policy_deny_as_not_found = True

    def policy_resource_attributes(self, request: Request) -> dict[str, Any]:
        """The participant's ids and consented scopes; an unknown id is an audited 404."""
        self.participant = self._participant(self.kwargs["pk"], lock=request.method == "PATCH")
        return policy_attributes(self.participant)

    def _participant(self, pk: Any, *, lock: bool) -> Participant:
        rows = Participant.objects.select_for_update() if lock else Participant.objects.all()
        found = rows.filter(pk=pk).first()
        if found is None:
            raise missing(self.policy_actions[self.request.method or "GET"], "participant", pk, what="participant")
        return found

    @extend_schema(responses={200: ParticipantSerializer})
    def get(self, request: Request, pk: Any) -> Response:
        """The participant, with its ETag."""
        note_participants([self.participant.pseudonym])
        body = _represent(request, self.participant)
        return Response(body, headers={"ETag": etag(self.participant)})

    @extend_schema(request=ParticipantInput(partial=True), responses={200: ParticipantSerializer})
    def patch(self, request: Request, pk: Any) -> Response:
        """Change the fields sent; the ETag read must still be current."""
        require_current(request, self.participant)
        data = ParticipantInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        participant = _save(self.participant, dict(data.validated_data))
        note_participants([participant.pseudonym])
        body = _represent(request, participant)
        return Response(body, headers={"ETag": etag(participant)})


class DisclosureAccountingApi(APIView):
    """``GET /api/v1/participants/{id}/disclosures/`` (``?format=csv`` for the CSV form).

    Every disclosure of the participant's PHI in the last six years: date,
    recipient, description and purpose. JSON needs ``disclosure.read``; the
    CSV file, which leaves the service, ``disclosure.export`` (a recent
    second factor).
    """

    policy_actions = {"GET": "disclosure.read"}
    policy_resource_type = "disclosure"
    policy_deny_as_not_found = True

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """Pick the action by form before the policy is asked."""
        form = request.query_params.get("format", "json")
        if form not in ("json", "csv"):
            raise BadRequest("format must be json or csv", code="invalid_format")
        self.policy_actions = {"GET": "disclosure.export" if form == "csv" else "disclosure.read"}
        super().initial(request, *args, **kwargs)

    @extend_schema(
        responses={
            200: inline_serializer(
                "DisclosureAccounting", {"participant": serializers.CharField(), "disclosures": serializers.ListField()}
            )
        }
    )
    def get(self, request: Request, pk: Any) -> Response | StreamingHttpResponse:
        """The accounting."""
        pseudonym = participant_pseudonym(str(pk))
        if pseudonym is None:
            raise NotFound("No such participant.", code="not_found")
        note_participants([pseudonym])
        entries = disclosures(pseudonym)
        if request.query_params.get("format") == "csv":
            response = StreamingHttpResponse(disclosures_csv(entries), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="disclosures-{pseudonym}.csv"'
            return response
        return Response({"participant": pseudonym, "count": len(entries), "disclosures": entries})
