"""Consent routes: ``/api/v1/participants/{id}/consents/`` and what is done to one of them.

``.../consents/{consent_id}/withdraw/`` withdraws it; ``.../consents/{consent_id}/authorization/``
is a compliance officer confirming it is a HIPAA authorization.

Withdrawal is a state, not a deletion: the consent keeps its record with
``withdrawn_at`` set, and from then on the policy refuses PHI for its scopes
(unless another consent still covers them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.contract import ProblemCodes
from core.errors import BadRequest
from core.serializers import StrictSerializer
from policy.views import PolicyResource, PolicyView
from security.audit.context import note_participants
from security.identity.authentication import claims_of
from services.common import CleanCharField
from services.consents.actions import consent_authorization_confirm, consent_record, consent_withdraw
from services.consents.errors import ConsentErrorCode
from services.consents.models import Consent, Scope
from services.consents.selectors import access_consent, access_consent_holder, consent_list, policy_attributes
from services.errors import RecordErrorCode
from services.participants.models import Participant


class ConsentSerializer(serializers.ModelSerializer[Consent]):
    """A consent as the API shows it; ``authorization`` says whether a compliance officer confirmed the flag."""

    authorization = serializers.SerializerMethodField()

    def get_authorization(self, consent: Consent) -> str:
        """``none`` (not an authorization), ``authorization not confirmed``, or ``confirmed``."""
        if not consent.hipaa_authorization:
            return "none"
        return "confirmed" if consent.authorization_confirmed_at is not None else "authorization not confirmed"

    class Meta:
        model = Consent
        fields: ClassVar[list[str]] = [
            "id",
            "participant",
            "scopes",
            "form_version",
            "hipaa_authorization",
            "authorization",
            "authorization_confirmed_at",
            "authorization_confirmed_by",
            "signed_at",
            "withdrawn_at",
            "created_at",
        ]


class ConsentInput(StrictSerializer):
    """A signed consent form."""

    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=Scope.choices), min_length=1, max_length=len(Scope.choices)
    )
    form_version = CleanCharField(min_length=1, max_length=64)
    signed_at = serializers.DateTimeField()
    hipaa_authorization = serializers.BooleanField(
        required=False, default=False, help_text="the form is also a HIPAA authorization (45 CFR 164.508)"
    )

    def validate_scopes(self, scopes: list[str]) -> list[str]:
        """Each scope once."""
        if len(set(scopes)) != len(scopes):
            raise serializers.ValidationError("A scope is listed twice.", code=RecordErrorCode.LISTED_TWICE)
        return sorted(scopes)

    def validate_signed_at(self, signed_at: Any) -> Any:
        """Not in the future."""
        if signed_at > timezone.now():
            raise serializers.ValidationError(
                "A consent cannot be signed in the future.", code=RecordErrorCode.IN_THE_FUTURE
            )
        return signed_at


class WithdrawInput(StrictSerializer):
    """Nothing to send: the time of withdrawal is the server's."""


class _ParticipantScoped(PolicyView[Participant]):
    """Routes under one participant: the policy sees which participant (break-glass grants may name it)."""

    policy_resource_type = "consent"
    policy_deny_as_not_found = True

    def policy_resource(self, request: Request) -> PolicyResource[Participant]:
        """The participant the consents belong to; an unknown id is an audited 404."""
        participant = access_consent_holder(participant_id=self.kwargs["pk"], action=str(self.policy_action(request)))
        note_participants([participant.pseudonym])
        return PolicyResource(participant, policy_attributes(participant))


class ConsentListApi(_ParticipantScoped):
    """``GET``: the participant's consents, withdrawn ones included; ``POST``: record a signed consent."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "consent.list", "POST": "consent.create"}
    policy_collection = True

    @extend_schema(responses={200: inline_serializer("ConsentList", {"results": ConsentSerializer(many=True)})})
    def get(self, request: Request, pk: Any) -> Response:
        """Every consent of the participant, oldest first."""
        return Response({"results": ConsentSerializer(consent_list(participant=self.resource), many=True).data})

    @extend_schema(
        request=ConsentInput,
        responses={201: ConsentSerializer},
        examples=[
            OpenApiExample(
                "A signed consent",
                request_only=True,
                value={
                    "scopes": ["research_use", "contact"],
                    "form_version": "2026-01",
                    "signed_at": "2026-02-01T10:00:00Z",
                },
            )
        ],
    )  # fmt: skip
    def post(self, request: Request, pk: Any) -> Response:
        """Record a consent."""
        data = ConsentInput(data=request.data)
        data.is_valid(raise_exception=True)
        consent = consent_record(participant=self.resource, **data.validated_data)
        return Response(ConsentSerializer(consent).data, status=status.HTTP_201_CREATED)


def _empty_object(request: Request) -> None:
    """The body of a route that takes no fields: a JSON object, empty (400 otherwise)."""
    if not isinstance(request.data, dict):
        raise BadRequest("Send a JSON object (it may be empty).", code=RecordErrorCode.INVALID_BODY)
    WithdrawInput(data=request.data).is_valid(raise_exception=True)


class ConsentWithdrawApi(_ParticipantScoped):
    """``POST``: withdraw one consent (once; the record stays)."""

    policy_actions: ClassVar[Mapping[str, str]] = {"POST": "consent.withdraw"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "POST": {400: (RecordErrorCode.INVALID_BODY,), 409: (ConsentErrorCode.ALREADY_WITHDRAWN,)}
    }
    policy_resource_id_kwarg = "consent_id"

    @extend_schema(request=WithdrawInput, responses={200: ConsentSerializer})
    def post(self, request: Request, pk: Any, consent_id: Any) -> Response:
        """Mark the consent withdrawn now."""
        _empty_object(request)
        action = str(self.policy_action(request))
        consent = access_consent(participant=self.resource, consent_id=consent_id, action=action)
        return Response(ConsentSerializer(consent_withdraw(consent=consent)).data)


class ConsentAuthorizationApi(PolicyView[None]):
    """``POST``: a compliance officer confirms the consent is a valid HIPAA authorization (a recent second factor).

    Only from then on does it exempt reads for the purposes it covers from the accounting of
    disclosures. The participant and the consent are loaded once the policy has allowed (a second
    factor proves nothing of ids); an unknown id, or one of another community, is an audited 404.
    """

    policy_actions: ClassVar[Mapping[str, str]] = {"POST": "consent.confirm_authorization"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "POST": {
            400: (RecordErrorCode.INVALID_BODY,),
            409: (ConsentErrorCode.NOT_AUTHORIZATION, ConsentErrorCode.ALREADY_CONFIRMED),
        }
    }
    policy_resource_type = "consent"
    policy_deny_as_not_found = True

    @extend_schema(request=WithdrawInput, responses={200: ConsentSerializer})
    def post(self, request: Request, pk: Any, consent_id: Any) -> Response:
        """Confirm the authorization now."""
        _empty_object(request)
        action = str(self.policy_action(request))
        participant = access_consent_holder(participant_id=pk, action=action)
        note_participants([participant.pseudonym])
        consent = access_consent(participant=participant, consent_id=consent_id, action=action)
        confirmed = consent_authorization_confirm(consent=consent, actor_id=str(claims_of(request).subject))
        return Response(ConsentSerializer(confirmed).data)
