"""Accounting of disclosures routes under ``/api/v1/``, for compliance officers.

- ``GET /participants/{id}/disclosures/``: the accounting as it stands
  (``?format=csv`` for the CSV file, ``?include=uses`` for the officer's view
  that also lists workforce uses and authorized reads, each labelled);
- ``/accounting-requests/``: the register of requests, their 60-day clock and
  extension, providing one (the copy kept) and reading that copy back;
- ``/accounting-suspensions/``: 164.528(a)(2) suspensions;
- ``/participants/{id}/recorded-disclosures/``: disclosures made off the platform.

Reading an accounting names the participant in its audit event but is not a
disclosure (``disclosure.*`` and ``accounting.*`` are not PHI actions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from django.db.models import Model, QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.contract import ProblemCodes
from core.errors import BadRequest, Conflict, NotFound
from core.serializers import StrictSerializer, query_choice
from policy.views import PolicyResource, PolicyView
from security.audit.context import note_participants
from security.audit.disclosures import disclosures_csv
from security.identity.authentication import claims_of
from services.accounting.actions import (
    accounting_request_extend,
    accounting_request_open,
    accounting_request_provide,
    recorded_disclosure_record,
    suspension_record,
)
from services.accounting.errors import AccountingErrorCode
from services.accounting.models import AccountingRequest, RecordedDisclosure, RequestStatus, Suspension, SuspensionForm
from services.accounting.selectors import (
    access_accounting_request,
    accounting_entries,
    accounting_requests,
    recorded_disclosures,
    suspensions,
)
from services.common import CleanCharField, not_found_on_record, not_in_community
from services.errors import RecordErrorCode
from services.participants.errors import ParticipantErrorCode
from services.participants.models import Participant

M = TypeVar("M", bound=Model)

DISCLOSURE_FORMATS = ("json", "csv")
INCLUDES = ("", "uses")
REGISTER_LIMIT = 500


def truncated_list(name: str, serializer: type[serializers.Serializer[Any]]) -> Any:
    """The schema of a list answered whole up to its first rows: ``results``, and whether it was ``truncated``."""
    return inline_serializer(name, {
        "results": serializer(many=True),
        "truncated": serializers.BooleanField(help_text="More rows exist than were answered"),
    })  # fmt: skip


def _first_rows(rows: QuerySet[M]) -> tuple[list[M], bool]:
    """The first ``REGISTER_LIMIT`` rows, and whether there were more (the response says ``truncated``)."""
    found = list(rows[: REGISTER_LIMIT + 1])
    return found[:REGISTER_LIMIT], len(found) > REGISTER_LIMIT


def _actor(request: Request) -> str:
    return str(claims_of(request).subject)


class _ParticipantScoped(PolicyView[Participant]):
    """A route on one participant's accounting: an unknown id is an audited 404."""

    policy_resource_type = "disclosure"
    policy_deny_as_not_found = True

    def policy_resource(self, request: Request) -> PolicyResource[Participant]:
        """The participant (the policy needs nothing of it)."""
        participant = Participant.objects.filter(pk=self.kwargs["pk"]).first()
        if participant is None:
            raise not_found_on_record(
                str(self.policy_action(request)), "disclosure", self.kwargs["pk"], what="participant"
            )
        return PolicyResource(participant, {})


class DisclosureAccountingApi(PolicyView[None]):
    """``GET /api/v1/participants/{id}/disclosures/`` (``?format=csv``; ``?include=uses``).

    Every disclosure of the participant's PHI in the last six years, with the
    content of 164.528(b)(2). JSON needs ``disclosure.read``; the CSV file,
    which leaves the service, ``disclosure.export`` (a recent second factor).
    """

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "disclosure.read"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "GET": {400: (ParticipantErrorCode.INVALID_FORMAT, AccountingErrorCode.INVALID_INCLUDE)}
    }
    policy_format_actions: ClassVar[Mapping[str, str]] = {"csv": "disclosure.export"}  # the file leaves the service
    policy_resource_type = "disclosure"
    policy_deny_as_not_found = True

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """Refuse an unknown format or include before anything else (authentication included) is done."""
        query_choice(request, "format", DISCLOSURE_FORMATS, code=ParticipantErrorCode.INVALID_FORMAT)
        if request.query_params.get("include", "") not in INCLUDES:
            raise BadRequest("include must be uses", code=AccountingErrorCode.INVALID_INCLUDE)
        super().initial(request, *args, **kwargs)

    @extend_schema(
        responses={
            200: inline_serializer(
                "DisclosureAccounting",
                {
                    "participant": serializers.CharField(),
                    "count": serializers.IntegerField(),
                    "disclosures": serializers.ListField(),
                },
            )
        }
    )
    def get(self, request: Request, pk: Any) -> Response | StreamingHttpResponse:
        """The accounting (the policy allowed the look-up; an unknown participant is then a 404 on record)."""
        participant = Participant.objects.filter(pk=pk).first()
        if participant is None:
            raise NotFound("No such participant.", code=RecordErrorCode.NOT_FOUND)
        pseudonym = participant.pseudonym
        note_participants([pseudonym])
        entries = accounting_entries(participant, include_exempt=request.query_params.get("include") == "uses")
        if request.query_params.get("format") == "csv":
            response = StreamingHttpResponse(disclosures_csv(entries), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="disclosures-{pseudonym}.csv"'
            return response
        return Response({"participant": pseudonym, "count": len(entries), "disclosures": entries})


class AccountingRequestSerializer(serializers.ModelSerializer[AccountingRequest]):
    """A request as the register shows it: its clock, and the copy provided (digest only)."""

    due = serializers.SerializerMethodField()
    overdue = serializers.SerializerMethodField()
    provided = serializers.SerializerMethodField()

    class Meta:
        model = AccountingRequest
        fields: ClassVar[list[str]] = [
            "id",
            "participant",
            "received_at",
            "requester",
            "period_start",
            "due_at",
            "extended_due_at",
            "extension_reason",
            "individual_told_on",
            "due",
            "overdue",
            "status",
            "opened_by",
            "provided",
            "created_at",
        ]

    def get_due(self, request: AccountingRequest) -> str:
        """The date the accounting is due: the extended one if extended."""
        return (request.extended_due_at or request.due_at).isoformat()

    def get_overdue(self, request: AccountingRequest) -> bool:
        """Open past its due date."""
        return request.status == RequestStatus.OPEN and timezone.now() > (request.extended_due_at or request.due_at)

    def get_provided(self, request: AccountingRequest) -> dict[str, Any] | None:
        """When and by whom the accounting was provided, and the SHA-256 of the copy kept."""
        copy = getattr(request, "copy", None)
        if copy is None:
            return None
        return {
            "provided_at": copy.provided_at.isoformat(),
            "provided_by": copy.provided_by,
            "responsible": copy.responsible,
            "sha256": copy.sha256,
        }


class AccountingRequestListApi(PolicyView[None]):
    """``GET``: the register (``?status=open|provided``); ``POST``: a request received."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "accounting.read", "POST": "accounting.manage"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "GET": {400: (AccountingErrorCode.INVALID_STATUS,)},
        "POST": {400: (AccountingErrorCode.INVALID_PERIOD,)},
    }
    policy_resource_type = "accounting"
    policy_collection = True

    @extend_schema_serializer(component_name="AccountingRequestOpen")
    class InputSerializer(StrictSerializer):
        participant = serializers.UUIDField()
        requester = CleanCharField(min_length=1, max_length=200)
        received_at = serializers.DateTimeField(required=False)
        period_start = serializers.DateTimeField(required=False)

    @extend_schema(responses={200: truncated_list("AccountingRequestList", AccountingRequestSerializer)})
    def get(self, request: Request) -> Response:
        """The requests, oldest first."""
        wanted = query_choice(request, "status", RequestStatus.values, code=AccountingErrorCode.INVALID_STATUS)
        rows, truncated = _first_rows(accounting_requests(status=wanted))
        return Response({"results": AccountingRequestSerializer(rows, many=True).data, "truncated": truncated})

    @extend_schema(request=InputSerializer, responses={201: AccountingRequestSerializer})
    def post(self, request: Request) -> Response:
        """Open the request; it is due 60 days after its receipt."""
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        participant = Participant.objects.filter(pk=data["participant"]).first()
        if participant is None:
            raise not_in_community("participant", "participant")
        opened = accounting_request_open(
            participant=participant,
            requester=data["requester"],
            received_at=data.get("received_at"),
            period_start=data.get("period_start"),
            actor_id=_actor(request),
        )
        return Response(AccountingRequestSerializer(opened).data, status=status.HTTP_201_CREATED)


class _OneRequest(PolicyView[AccountingRequest]):
    """A route on one request of this community; an unknown id is an audited 404."""

    policy_resource_type = "accounting"
    policy_deny_as_not_found = True
    locks = False

    def policy_resource(self, request: Request) -> PolicyResource[AccountingRequest]:
        """The request (locked for a change)."""
        found = access_accounting_request(
            request_id=self.kwargs["pk"], action=str(self.policy_action(request)), for_update=self.locks
        )
        note_participants([found.participant.pseudonym])
        return PolicyResource(found, {})


class AccountingRequestDetailApi(_OneRequest):
    """``GET /api/v1/accounting-requests/{id}/``: one request and its clock."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "accounting.read"}

    @extend_schema(responses={200: AccountingRequestSerializer})
    def get(self, request: Request, pk: Any) -> Response:
        """The request."""
        return Response(AccountingRequestSerializer(self.resource).data)


class AccountingExtensionApi(_OneRequest):
    """``POST /api/v1/accounting-requests/{id}/extension/``: the one extension (at most 30 days, before due)."""

    policy_actions: ClassVar[Mapping[str, str]] = {"POST": "accounting.manage"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "POST": {
            400: (AccountingErrorCode.INVALID_TOLD_ON, AccountingErrorCode.EXTENSION_TOO_LONG,
                  AccountingErrorCode.EXTENSION_TOO_LATE),
            409: (AccountingErrorCode.NOT_OPEN, AccountingErrorCode.ALREADY_EXTENDED,
                  AccountingErrorCode.EXTENSION_TOO_LATE),
        }
    }  # fmt: skip
    locks = True

    @extend_schema_serializer(component_name="AccountingExtension")
    class InputSerializer(StrictSerializer):
        days = serializers.IntegerField(min_value=1, max_value=30)
        reason = CleanCharField(min_length=1, max_length=2000, multiline=True)
        individual_told_on = serializers.DateField()

    @extend_schema(request=InputSerializer, responses={200: AccountingRequestSerializer})
    def post(self, request: Request, pk: Any) -> Response:
        """Extend the due date."""
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        extended = accounting_request_extend(request=self.resource, actor_id=_actor(request), **payload.validated_data)
        return Response(AccountingRequestSerializer(extended).data)


def _loaded(view: PolicyView[None], request: Request, *, for_update: bool) -> AccountingRequest:
    """The request of an elevated route, loaded once the policy has allowed (a second factor proves nothing of ids)."""
    found = access_accounting_request(
        request_id=view.kwargs["pk"], action=str(view.policy_action(request)), for_update=for_update
    )
    note_participants([found.participant.pseudonym])
    return found


class AccountingProvideApi(PolicyView[None]):
    """``POST /api/v1/accounting-requests/{id}/provide/``: build the accounting, keep the copy, close the request."""

    policy_actions: ClassVar[Mapping[str, str]] = {"POST": "accounting.provide"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {"POST": {409: (AccountingErrorCode.NOT_OPEN,)}}
    policy_resource_type = "accounting"
    policy_deny_as_not_found = True

    @extend_schema_serializer(component_name="AccountingProvide")
    class InputSerializer(StrictSerializer):
        responsible = CleanCharField(max_length=300, required=False, allow_blank=True)
        summarise_repeated = serializers.BooleanField(required=False, default=False)
        summarise_research = serializers.BooleanField(required=False, default=False)

    @extend_schema(request=InputSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, pk: Any) -> HttpResponse:
        """The accounting provided: the exact bytes kept (``ETag`` is their SHA-256)."""
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        copy = accounting_request_provide(
            request=_loaded(self, request, for_update=True),
            actor_id=_actor(request),
            responsible=payload.validated_data.get("responsible", ""),
            summarise=payload.validated_data["summarise_repeated"],
            research_summaries=payload.validated_data["summarise_research"],
        )
        return _copy_response(copy.content, copy.sha256, status.HTTP_201_CREATED)


def _copy_response(content: str, sha256: str, code: int = status.HTTP_200_OK) -> HttpResponse:
    response = HttpResponse(content.encode("utf-8"), content_type="application/json", status=code)
    response["ETag"] = f'"{sha256}"'
    return response


class AccountingCopyApi(PolicyView[None]):
    """``GET /api/v1/accounting-requests/{id}/copy/``: the copy provided, byte for byte."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "accounting.copy"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {"GET": {409: (AccountingErrorCode.NO_COPY,)}}
    policy_resource_type = "accounting"
    policy_deny_as_not_found = True

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, pk: Any) -> HttpResponse:
        """The copy kept; 409 when the request has not been provided yet."""
        copy = getattr(_loaded(self, request, for_update=False), "copy", None)
        if copy is None:
            raise Conflict("This request has not been provided yet.", code=AccountingErrorCode.NO_COPY)
        return _copy_response(copy.content, copy.sha256)


class SuspensionSerializer(serializers.ModelSerializer[Suspension]):
    """A suspension on record."""

    class Meta:
        model = Suspension
        fields: ClassVar[list[str]] = [
            "id",
            "agency",
            "official",
            "form",
            "statement",
            "starts_at",
            "ends_at",
            "recorded_by",
            "created_at",
        ]


class SuspensionListApi(PolicyView[None]):
    """``GET``: the suspensions; ``POST``: record one (``accounting.suspend``, a fresh second factor; oral: 30 days)."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "accounting.read", "POST": "accounting.suspend"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "POST": {
            400: (AccountingErrorCode.INVALID_PERIOD, AccountingErrorCode.ORAL_SUSPENSION_NOT_STARTED,
                  AccountingErrorCode.ORAL_SUSPENSION_TOO_LONG),
            409: (AccountingErrorCode.ORAL_SUSPENSION_REPEATED,),
        }
    }  # fmt: skip
    policy_resource_type = "accounting"
    policy_collection = True

    @extend_schema_serializer(component_name="AccountingSuspensionRecord")
    class InputSerializer(StrictSerializer):
        agency = CleanCharField(min_length=1, max_length=200)
        official = CleanCharField(min_length=1, max_length=200)
        form = serializers.ChoiceField(choices=SuspensionForm.choices)
        statement = CleanCharField(min_length=1, max_length=4000, multiline=True)
        starts_at = serializers.DateTimeField()
        ends_at = serializers.DateTimeField()

    @extend_schema(responses={200: truncated_list("AccountingSuspensionList", SuspensionSerializer)})
    def get(self, request: Request) -> Response:
        """Every suspension, oldest first."""
        rows, truncated = _first_rows(suspensions())
        return Response({"results": SuspensionSerializer(rows, many=True).data, "truncated": truncated})

    @extend_schema(request=InputSerializer, responses={201: SuspensionSerializer})
    def post(self, request: Request) -> Response:
        """Record a suspension."""
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        made = suspension_record(actor_id=_actor(request), **payload.validated_data)
        return Response(SuspensionSerializer(made).data, status=status.HTTP_201_CREATED)


class RecordedDisclosureSerializer(serializers.ModelSerializer[RecordedDisclosure]):
    """A disclosure recorded off the platform."""

    class Meta:
        model = RecordedDisclosure
        fields: ClassVar[list[str]] = [
            "id",
            "participant",
            "disclosed_at",
            "recipient_name",
            "recipient_organisation",
            "recipient_address",
            "description",
            "purpose_statement",
            "recorded_by",
            "created_at",
        ]


class RecordedDisclosureListApi(_ParticipantScoped):
    """``GET``: the participant's disclosures recorded off the platform; ``POST``: record one."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "accounting.read", "POST": "accounting.manage"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {"POST": {400: (AccountingErrorCode.INVALID_PERIOD,)}}

    @extend_schema_serializer(component_name="RecordedDisclosureRecord")
    class InputSerializer(StrictSerializer):
        disclosed_at = serializers.DateTimeField()
        recipient_name = CleanCharField(min_length=1, max_length=200)
        recipient_organisation = CleanCharField(min_length=1, max_length=200)
        recipient_address = CleanCharField(max_length=500, required=False, allow_blank=True, multiline=True)
        description = CleanCharField(min_length=1, max_length=2000, multiline=True)
        purpose_statement = CleanCharField(min_length=1, max_length=2000, multiline=True)

    @extend_schema(responses={200: truncated_list("RecordedDisclosureList", RecordedDisclosureSerializer)})
    def get(self, request: Request, pk: Any) -> Response:
        """The recorded disclosures, oldest first."""
        note_participants([self.resource.pseudonym])
        rows, truncated = _first_rows(recorded_disclosures(participant=self.resource))
        return Response({"results": RecordedDisclosureSerializer(rows, many=True).data, "truncated": truncated})

    @extend_schema(request=InputSerializer, responses={201: RecordedDisclosureSerializer})
    def post(self, request: Request, pk: Any) -> Response:
        """Record a disclosure made off the platform."""
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        note_participants([self.resource.pseudonym])
        made = recorded_disclosure_record(participant=self.resource, actor_id=_actor(request), **payload.validated_data)
        return Response(RecordedDisclosureSerializer(made).data, status=status.HTTP_201_CREATED)
