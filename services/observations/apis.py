"""Observation routes: ``/api/v1/observations/`` and ``/api/v1/observations/{id}/``.

An observation's date, note, display and text value are PHI (encrypted;
redacted for researchers); its code, number and unit are not. Reads follow the participant's consent like
participant reads do, and name the participant for the accounting of
disclosures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

from core.pagination import CursorField, PageSizeField, paginated_response
from core.serializers import StrictQuery, StrictSerializer
from policy.context import decision_of
from policy.obligations import RedactingSerializerMixin
from policy.views import PolicyResource, PolicyView
from security.audit.context import note_participants
from services.common import CleanCharField, CreatedCursor, PastDateField, text_pattern
from services.errors import RecordErrorCode
from services.observations.actions import observation_record
from services.observations.models import Observation
from services.observations.selectors import access_observation, observation_list
from services.participants.selectors import policy_attributes

VALUE_BOUND = 10**12  # a number's magnitude stays below it (the column's precision)
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.\-_:]{0,63}$"
MAX_NOTE = 10_000


@extend_schema_field({
    "oneOf": [
        {"type": "number", "minimum": -VALUE_BOUND, "maximum": VALUE_BOUND, "exclusiveMinimum": True,
         "exclusiveMaximum": True},
        {"type": "string", "minLength": 1, "maxLength": 1000, "pattern": text_pattern(CleanCharField(min_length=1))},
    ]
})  # fmt: skip
class ObservationValueField(serializers.Field):  # type: ignore[type-arg]  # a number or a text: no one type
    """``value``: a finite number or a short text."""

    def to_internal_value(self, data: Any) -> Decimal | str:
        """A JSON number (not a boolean) becomes a Decimal; a string is kept if clean and short."""
        if isinstance(data, bool):
            raise serializers.ValidationError("A value is a number or a text.")
        if isinstance(data, int | float):
            number = Decimal(str(data))
            if not number.is_finite() or abs(number) >= Decimal(VALUE_BOUND):
                raise serializers.ValidationError("The number is out of range.", code=RecordErrorCode.OUT_OF_RANGE)
            return number.quantize(Decimal("0.000001"))
        if isinstance(data, str):
            return str(CleanCharField(min_length=1, max_length=1000).run_validation(data))
        raise serializers.ValidationError("A value is a number or a text.")

    def to_representation(self, value: Any) -> Any:
        """Numbers as JSON numbers."""
        return float(value) if isinstance(value, Decimal) else value


class ObservationSerializer(RedactingSerializerMixin):
    """An observation; the fields the policy withholds (date, note, free text, record time) come out ``null``."""

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

    def to_representation(self, instance: Any) -> Any:
        """As the mixin does; a text value is free text, withheld where the policy names ``value_text``."""
        data = super().to_representation(instance)
        if isinstance(data.get("value"), str) and self.withheld("value_text"):
            data["value"] = None
        return data


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


class ObservationQuery(StrictQuery):
    """Filters of the observation list."""

    participant = serializers.UUIDField(required=False)
    cursor = CursorField()
    limit = PageSizeField()


def _with_value(observation: Observation) -> Observation:
    value = observation.value_number if observation.value_number is not None else (observation.value_text or None)
    observation.value = value  # type: ignore[attr-defined]  # what the serializer reads
    return observation


def _disclosed(page: Sequence[Observation]) -> list[Observation]:
    note_participants(observation.participant.pseudonym for observation in page)
    return [_with_value(observation) for observation in page]


class ObservationListApi(PolicyView[None]):
    """``GET``: observations (``?participant=``, cursor pages); ``POST``: record one."""

    pagination_class: ClassVar[type[BasePagination] | None] = CreatedCursor
    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "observation.list", "POST": "observation.create"}
    policy_resource_type = "observation"
    policy_collection = True

    @extend_schema(parameters=[ObservationQuery], responses={200: ObservationSerializer(many=True)})
    def get(self, request: Request) -> Response:
        """A page of observations, narrowed to the consent the purpose needs."""
        query = ObservationQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        found = observation_list(decision=decision_of(request), participant=query.validated_data.get("participant"))
        return paginated_response(
            serializer_class=ObservationSerializer,
            queryset=found,
            request=request,
            view=self,
            on_page=_disclosed,
        )

    @extend_schema(
        request=ObservationInput,
        responses={201: ObservationSerializer},
        examples=[
            OpenApiExample(
                "A blood pressure reading",
                request_only=True,
                value={"participant": "5c1a2b3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "code_system": "http://loinc.org",
                       "code": "8480-6", "display": "Systolic blood pressure", "value": 128, "unit": "mm[Hg]",
                       "effective_date": "2026-02-02"},
            )
        ],
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        """Record an observation about a participant of this community."""
        data = ObservationInput(data=request.data)
        data.is_valid(raise_exception=True)
        observation = observation_record(**data.validated_data)
        note_participants([observation.participant.pseudonym])
        body = ObservationSerializer(_with_value(observation), context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)


class ObservationDetailApi(PolicyView[Observation]):
    """``GET``: one observation (its date and note only under the participant's covering consent)."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "observation.read"}
    policy_resource_type = "observation"
    policy_deny_as_not_found = True

    def policy_resource(self, request: Request) -> PolicyResource[Observation]:
        """The participant's ids and consented scopes; an unknown id is an audited 404."""
        observation = access_observation(observation_id=self.kwargs["pk"], action=str(self.policy_action(request)))
        return PolicyResource(observation, policy_attributes(observation.participant))

    @extend_schema(responses={200: ObservationSerializer})
    def get(self, request: Request, pk: Any) -> Response:
        """The observation."""
        note_participants([self.resource.participant.pseudonym])
        body = ObservationSerializer(_with_value(self.resource), context={"request": request}).data
        return Response(body)
