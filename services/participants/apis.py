"""Participant routes: enrolment, reads (redacted as the policy says), updates.

PHI lives only in encrypted columns and leaves only through
:class:`ParticipantSerializer`, which applies the decision's redaction. A list
read of PHI is narrowed to participants whose consent covers the stated
purpose (the policy's ``consent_scope`` condition); a single read outside the
consent is refused with the reason. Every read names the participants it
touched, for their accounting of disclosures. An MRN or email is searched
with a POST body (``/participants/search/``), never in a URL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

from core.contract import ProblemCodes
from core.pagination import BodyCursor, paginated_response
from policy.context import decision_of
from policy.views import PolicyResource, PolicyView
from security.audit.context import note_participants
from services.common import CreatedCursor, etag, require_current
from services.participants.actions import participant_enroll, participant_update
from services.participants.errors import ParticipantErrorCode
from services.participants.models import Participant
from services.participants.selectors import (
    access_participant,
    participant_list,
    policy_attributes,
)
from services.participants.serializers import (
    ParticipantInput,
    ParticipantQuery,
    ParticipantSearch,
    ParticipantSerializer,
)


def _represent(request: Request, participant: Participant) -> dict[str, Any]:
    return dict(ParticipantSerializer(participant, context={"request": request}).data)


def _disclosed(page: Sequence[Participant]) -> Sequence[Participant]:
    note_participants(participant.pseudonym for participant in page)
    return page


class ParticipantListApi(PolicyView[None]):
    """``GET``: participants (``?study=``, cursor pages; MRN and email only through the search); ``POST``: enrol one."""

    pagination_class: ClassVar[type[BasePagination] | None] = CreatedCursor
    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "participant.list", "POST": "participant.create"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "GET": {400: (ParticipantErrorCode.SEARCH_IN_URL,)},
        "POST": {409: (ParticipantErrorCode.DUPLICATE_MRN,)},
    }
    policy_resource_type = "participant"
    policy_collection = True

    @extend_schema(
        parameters=[ParticipantQuery],
        responses={200: ParticipantSerializer(many=True)},
        description="`?mrn=` and `?email=` are refused (400 `search_in_url`): search with "
        "`POST /api/v1/participants/search/`, so an identifier never appears in a URL or an access log.",
    )
    def get(self, request: Request) -> Response:
        """A page of participants, narrowed to the consent the purpose needs."""
        query = ParticipantQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        found = participant_list(decision=decision_of(request), study=query.validated_data.get("study"))
        return paginated_response(
            serializer_class=ParticipantSerializer,
            queryset=found,
            request=request,
            view=self,
            on_page=_disclosed,
        )

    @extend_schema(
        request=ParticipantInput,
        responses={201: ParticipantSerializer},
        examples=[
            OpenApiExample(
                "An enrolment",
                request_only=True,
                value={"study": "0b6f7f0e-6c1d-4a8e-9a3e-2d1c5b4a3f21", "given_name": "Ada", "family_name": "Lovelace",
                       "date_of_birth": "1985-12-10", "mrn": "MRN-000123", "email": "ada@example.org"},
            )
        ],
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        """Enrol a participant (a new random pseudonym); 201 with the record and its ETag."""
        data = ParticipantInput(data=request.data)
        data.is_valid(raise_exception=True)
        participant = participant_enroll(**data.validated_data)
        note_participants([participant.pseudonym])
        headers = {"ETag": etag(participant), "Location": f"/api/v1/participants/{participant.pk}/"}
        return Response(_represent(request, participant), status=status.HTTP_201_CREATED, headers=headers)


class ParticipantSearchApi(PolicyView[None]):
    """``POST /api/v1/participants/search/``: participants by exact MRN or email, sent in the body.

    Decided as the list (``participant.list``): the same consent condition, the
    same redaction, the same accounting of disclosures; a caller whose view
    redacts the field searched by is refused, as on the list. The identifier
    never appears in a URL, so in no access log, and pages are asked for with
    ``"cursor"`` in the same body (``next`` is a bare cursor, not a link).
    """

    policy_actions: ClassVar[Mapping[str, str]] = {"POST": "participant.list"}
    operation_ids: ClassVar[Mapping[str, str]] = {"POST": "participantSearch"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {"POST": {400: (ParticipantErrorCode.FILTER_NOT_ALLOWED,)}}
    policy_resource_type = "participant"
    policy_collection = True

    class Pages(BodyCursor, CreatedCursor):
        """The list's ordering and page sizes; the cursor and ``limit`` come in the body."""

    pagination_class: ClassVar[type[BasePagination] | None] = Pages

    @extend_schema(
        request=ParticipantSearch,
        responses={
            200: inline_serializer(
                "ParticipantSearchPage",
                {
                    "next": serializers.CharField(allow_null=True, help_text="send as `cursor` for the next page"),
                    "previous": serializers.CharField(allow_null=True),
                    "results": ParticipantSerializer(many=True),
                },
            )
        },
    )
    def post(self, request: Request) -> Response:
        """A page of the participants with that MRN or email, narrowed to the consent the purpose needs."""
        search = ParticipantSearch(data=request.data)
        search.is_valid(raise_exception=True)
        found = participant_list(decision=decision_of(request), **search.terms())
        return paginated_response(
            serializer_class=ParticipantSerializer,
            queryset=found,
            request=request,
            view=self,
            on_page=_disclosed,
        )


class ParticipantDetailApi(PolicyView[Participant]):
    """``GET``: one participant (PHI only under a covering consent); ``PATCH`` with ``If-Match``."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "participant.read", "PATCH": "participant.update"}
    precondition_methods: ClassVar[frozenset[str]] = frozenset({"PATCH"})
    policy_resource_type = "participant"
    policy_deny_as_not_found = True

    def policy_resource(self, request: Request) -> PolicyResource[Participant]:
        """The participant's ids and consented scopes; an unknown id is an audited 404."""
        participant = access_participant(
            participant_id=self.kwargs["pk"],
            action=str(self.policy_action(request)),
            for_update=request.method == "PATCH",
        )
        return PolicyResource(participant, policy_attributes(participant))

    @extend_schema(responses={200: ParticipantSerializer})
    def get(self, request: Request, pk: Any) -> Response:
        """The participant, with its ETag."""
        note_participants([self.resource.pseudonym])
        body = _represent(request, self.resource)
        return Response(body, headers={"ETag": etag(self.resource)})

    @extend_schema(request=ParticipantInput(partial=True), responses={200: ParticipantSerializer})
    def patch(self, request: Request, pk: Any) -> Response:
        """Change the fields sent; the ETag read must still be current."""
        require_current(request, self.resource)
        data = ParticipantInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        participant = participant_update(participant=self.resource, changes=data.validated_data)
        note_participants([participant.pseudonym])
        body = _represent(request, participant)
        return Response(body, headers={"ETag": etag(participant)})
