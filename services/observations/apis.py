"""Observation routes: ``/api/v1/observations/`` and ``/api/v1/observations/{id}/``.

An observation's date and note are PHI (encrypted; redacted for researchers);
its code and value are not. Reads follow the participant's consent like
participant reads do, and name the participant for the accounting of
disclosures.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.serializers import StrictSerializer
from policy.obligations import RedactingSerializerMixin, apply_conditions
from security.audit.context import note_participants
from services.common import CleanCharField, CreatedCursor, PastDateField, missing
from services.observations.models import Observation
from services.participants.models import Participant
from services.participants.selectors import consented, policy_attributes

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.\-_:]{0,63}$"
MAX_NOTE = 10_000


@extend_schema_field({"oneOf": [{"type": "number"}, {"type": "string", "maxLength": 1000}]})
class ObservationValueField(serializers.Field):  # type: ignore[type-arg]
    """``value``: a finite number or a short text."""

    def to_internal_value(self, data: Any) -> Decimal | str:
        """A JSON number (not a boolean) becomes a Decimal; a string is kept if clean and short."""
        if isinstance(data, bool):
            raise serializers.ValidationError("A value is a number or a text.")
        if isinstance(data, int | float):
            number = Decimal(str(data))
            if not number.is_finite() or abs(number) >= Decimal("1e12"):
                raise serializers.ValidationError("The number is out of range.")
            return number.quantize(Decimal("0.000001"))
        if isinstance(data, str):
            return str(CleanCharField(min_length=1, max_length=1000).run_validation(data))
        raise serializers.ValidationError("A value is a number or a text.")

    def to_representation(self, value: Any) -> Any:
        """Numbers as JSON numbers."""
        return float(value) if isinstance(value, Decimal) else value


class ObservationSerializer(RedactingSerializerMixin):
    """An observation; ``effective_date`` and ``note`` come out ``null`` where the policy redacts them."""

    id = serializers.UUIDField(read_only=True)
    participant = serializers.UUIDField(source="participant_id", read_only=True)
    code_system = serializers.CharField(read_only=True)
    code = serializers.CharField(read_only=True)
    display = serializers.CharField(read_only=True)
    value = ObservationValueField(read_only=True)
    unit = serializers.CharField(read_only=True)
    effective_date = serializers.DateField(read_only=True)
    note = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class ObservationInput(StrictSerializer):
    """A new observation."""

    participant = serializers.UUIDField()
    code_system = CleanCharField(min_length=1, max_length=200)
    code = serializers.RegexField(CODE_PATTERN)
    display = CleanCharField(max_length=200, required=False, allow_blank=True)
    value = ObservationValueField(required=False, allow_null=True)
    unit = CleanCharField(max_length=32, required=False, allow_blank=True)
    effective_date = PastDateField(min_year=1880, required=False, allow_null=True)
    note = CleanCharField(multiline=True, max_length=MAX_NOTE, required=False, allow_null=True)


class ObservationQuery(StrictSerializer):
    """Filters of the observation list."""

    participant = serializers.UUIDField(required=False)
    cursor = serializers.CharField(max_length=200, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=200, required=False)


def _with_value(observation: Observation) -> Observation:
    observation.value = observation.value_number if observation.value_number is not None else observation.value_text  # type: ignore[attr-defined]
    return observation


def _consented(queryset: Any, scope: Any) -> Any:
    return consented(queryset, scope, participant_field="participant")


class ObservationListApi(APIView):
    """``GET``: observations (``?participant=``, cursor pages); ``POST``: record one."""

    policy_actions: ClassVar[dict[str, str]] = {"GET": "observation.list", "POST": "observation.create"}
    policy_resource_type = "observation"
    policy_collection = True

    @extend_schema(parameters=[ObservationQuery], responses={200: ObservationSerializer(many=True)})
    def get(self, request: Request) -> Response:
        """A page of observations, narrowed to the consent the purpose needs."""
        query = ObservationQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        found = Observation.objects.select_related("participant").order_by()
        if "participant" in query.validated_data:
            found = found.filter(participant_id=query.validated_data["participant"])
        decision = request._request.policy_decision  # type: ignore[attr-defined]
        found = apply_conditions(found, decision.obligations.conditions, {"consent_scope": _consented})
        paginator = CreatedCursor()
        page = paginator.paginate_queryset(found, request, view=self) or []
        note_participants(observation.participant.pseudonym for observation in page)
        data = ObservationSerializer([_with_value(item) for item in page], many=True, context={"request": request})
        return paginator.get_paginated_response(data.data)

    @extend_schema(request=ObservationInput, responses={201: ObservationSerializer})
    def post(self, request: Request) -> Response:
        """Record an observation about a participant of this community."""
        data = ObservationInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        participant = Participant.objects.filter(pk=values.pop("participant")).only("id", "pseudonym").first()
        if participant is None:
            raise serializers.ValidationError({"participant": ["No such participant in this community."]})
        value = values.pop("value", None)
        observation = Observation.objects.create(
            participant=participant,
            value_number=value if isinstance(value, Decimal) else None,
            value_text=value if isinstance(value, str) else "",
            **values,
        )
        note_participants([participant.pseudonym])
        body = ObservationSerializer(_with_value(observation), context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)


class ObservationDetailApi(APIView):
    """``GET``: one observation (its date and note only under the participant's covering consent)."""

    policy_action = "observation.read"
    policy_resource_type = "observation"
    policy_deny_as_not_found = True

    def policy_resource_attributes(self, request: Request) -> dict[str, Any]:
        """The participant's ids and consented scopes; an unknown id is an audited 404."""
        found = Observation.objects.select_related("participant").filter(pk=self.kwargs["pk"]).first()
        if found is None:
            raise missing("observation.read", "observation", self.kwargs["pk"], what="observation")
        self.observation = found
        return policy_attributes(found.participant)

    @extend_schema(responses={200: ObservationSerializer})
    def get(self, request: Request, pk: Any) -> Response:
        """The observation."""
        note_participants([self.observation.participant.pseudonym])
        body = ObservationSerializer(_with_value(self.observation), context={"request": request}).data
        return Response(body)
