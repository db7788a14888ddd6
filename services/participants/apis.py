"""Participant routes: the accounting of disclosures (the participant APIs themselves come with issue 6)."""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.errors import BadRequest, NotFound
from security.audit.context import note_participants
from security.audit.disclosures import disclosures, disclosures_csv
from services.participants.selectors import participant_pseudonym

NO_STORE = {"Cache-Control": "no-store"}


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
            response["Cache-Control"] = "no-store"
            return response
        return Response({"participant": pseudonym, "count": len(entries), "disclosures": entries}, headers=NO_STORE)
