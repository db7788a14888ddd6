"""De-identified export endpoints under ``/api/v1/exports/``.

A principal investigator with a recent second factor asks for a study's
dataset (``export.request``), naming who will receive it and why; a task
builds it (Safe Harbor and small-cell suppression) and seals it with the
community's key. A compliance officer, also with a recent second factor,
reviews the manifest and signs off the determination of no actual knowledge
(``export.determine``); nobody determines an export they asked for. Only then
may it be downloaded (``export.download``, also elevated): the file is
decrypted as it streams, and the audit middleware records it before the first
byte leaves.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, ClassVar

from django.db import transaction
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.contract import ProblemCodes
from core.exports import export_links
from core.serializers import StrictSerializer, query_choice
from policy.views import PolicyView
from security.audit.context import annotate
from security.identity.authentication import claims_of
from security.tasks import export_enqueue
from services.common import CleanCharField
from services.exports.actions import Recipient, deidentified_export_request, export_determine
from services.exports.errors import ExportErrorCode
from services.exports.formats import CONTENT_TYPES
from services.exports.models import (
    PURPOSE_LENGTH,
    RECIPIENT_ADDRESS_LENGTH,
    RECIPIENT_NAME_LENGTH,
    STATEMENT_LENGTH,
    DeidentifiedExport,
    ExportDetermination,
    ExportFormat,
)
from services.exports.selectors import (
    access_downloadable_export,
    access_export,
    access_ready_export,
    access_study,
    deidentified_exports,
    determination_of,
    export_plaintext,
    manifest_sha256,
    study_export_history,
)
from services.exports.tasks import deidentified_export_task
from tenants.context import community_required

BASE = "/api/v1/exports/"
LIST_LIMIT = 100


class DeterminationSerializer(serializers.ModelSerializer[ExportDetermination]):
    """A compliance officer's determination: who, when, what they stated, and which manifest it covers."""

    class Meta:
        model = ExportDetermination
        fields: ClassVar[list[str]] = ["determined_by", "determined_at", "statement", "conditions", "manifest_sha256"]


class ExportSerializer(serializers.ModelSerializer[DeidentifiedExport]):
    """An export's status, recipient and purpose, its determination and, once ready, where its file is."""

    links = serializers.SerializerMethodField()
    recipient = serializers.SerializerMethodField()
    manifest_sha256 = serializers.SerializerMethodField()
    determination = serializers.SerializerMethodField()

    class Meta:
        model = DeidentifiedExport
        fields: ClassVar[list[str]] = [
            "id",
            "study",
            "format",
            "status",
            "requested_by",
            "created_at",
            "finished_at",
            "participant_count",
            "observation_count",
            "error",
            "recipient",
            "purpose",
            "manifest_sha256",
            "determination",
            "links",
        ]

    def get_links(self, export: DeidentifiedExport) -> dict[str, str]:
        """Where to poll and, once ready, where to download."""
        return export_links(f"{BASE}{export.id}/", export.status)

    def get_recipient(self, export: DeidentifiedExport) -> dict[str, str]:
        """Who receives the file, as the requester stated."""
        return {
            "name": export.recipient_name,
            "organisation": export.recipient_organisation,
            "address": export.recipient_address,
        }

    def get_manifest_sha256(self, export: DeidentifiedExport) -> str | None:
        """The SHA-256 a determination of this export must name (None until the export is ready)."""
        return manifest_sha256(export.manifest) if export.manifest is not None else None

    def get_determination(self, export: DeidentifiedExport) -> dict[str, Any] | None:
        """The compliance officer's determination, or None while it is still to be made."""
        determination = determination_of(export)
        return None if determination is None else dict(DeterminationSerializer(determination).data)


class RecipientSerializer(StrictSerializer):
    """Who will receive the file: a person, their organisation and, optionally, an address."""

    name = CleanCharField(max_length=RECIPIENT_NAME_LENGTH)
    organisation = CleanCharField(max_length=RECIPIENT_NAME_LENGTH)
    address = CleanCharField(max_length=RECIPIENT_ADDRESS_LENGTH, required=False, default="", multiline=True)


class ExportListApi(PolicyView[None]):
    """``POST /api/v1/exports/``: ask for a study's dataset (202 and its id); ``GET``: the exports."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "export.list", "POST": "export.request"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "GET": {400: (ExportErrorCode.INVALID_FILTER,)},
        "POST": {404: (ExportErrorCode.STUDY_NOT_FOUND,)},
    }
    policy_resource_type = "export"
    policy_collection = True

    @extend_schema_serializer(component_name="DeidentifiedExportRequest")
    class InputSerializer(StrictSerializer):
        study = serializers.UUIDField()
        format = serializers.ChoiceField(choices=ExportFormat.values)
        recipient = RecipientSerializer()
        purpose = CleanCharField(max_length=PURPOSE_LENGTH, min_length=10)

    @extend_schema(request=InputSerializer, responses={202: ExportSerializer})
    def post(self, request: Request) -> Response:
        """Record the request; a worker builds the export once this transaction commits."""
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        study = access_study(payload.validated_data["study"])
        claims, community = claims_of(request), community_required(request)
        export = deidentified_export_request(
            study=study,
            export_format=payload.validated_data["format"],
            requested_by=str(claims.subject),
            recipient=Recipient(**payload.validated_data["recipient"]),
            purpose=payload.validated_data["purpose"],
        )
        annotate(resource_id=str(export.id))
        transaction.on_commit(
            lambda: export_enqueue(export, task=deidentified_export_task, claims=claims, community=community)
        )
        data = ExportSerializer(export).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["links"]["self"]})

    @extend_schema(
        parameters=[OpenApiParameter("determination", str, enum=["pending", "made"], required=False)],
        responses={200: ExportSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        """The newest exports of the community; ``?determination=pending`` is a compliance officer's queue."""
        wanted = query_choice(request, "determination", ("pending", "made"), code=ExportErrorCode.INVALID_FILTER)
        exports = deidentified_exports(determined=None if wanted is None else wanted == "made")[:LIST_LIMIT]
        return Response(ExportSerializer(exports, many=True).data)


class ExportDetailApi(PolicyView[None]):
    """``GET /api/v1/exports/{id}/``: the export's status."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "export.read"}
    policy_resource_type = "export"
    policy_deny_as_not_found = True

    @extend_schema(responses={200: ExportSerializer})
    def get(self, request: Request, pk: Any) -> Response:
        """Describe the export."""
        return Response(ExportSerializer(access_export(pk)).data)


class ExportDownloadApi(PolicyView[None]):
    """``GET /api/v1/exports/{id}/download/``: the de-identified file, decrypted as it streams."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "export.download"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "GET": {
            404: (ExportErrorCode.FILE_MISSING,),
            409: (ExportErrorCode.NOT_READY, ExportErrorCode.DETERMINATION_REQUIRED,
                  ExportErrorCode.DETERMINATION_NOT_RECORDED, ExportErrorCode.MANIFEST_MISMATCH),
            410: (ExportErrorCode.KEY_RETIRED,),
        }
    }  # fmt: skip
    policy_resource_type = "export"
    policy_deny_as_not_found = True

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, pk: Any) -> StreamingHttpResponse:
        """Stream the file once determined; its size and SHA-256 are those the manifest states."""
        export = access_downloadable_export(pk)
        manifest: dict[str, Any] = export.manifest or {}
        response = StreamingHttpResponse(export_plaintext(export), content_type=CONTENT_TYPES[export.format])
        response["Content-Disposition"] = f'attachment; filename="{export.file_name}"'
        response["Content-Length"] = str(manifest["bytes"])
        response["Digest"] = "sha-256=" + base64.b64encode(bytes.fromhex(manifest["sha256"])).decode()
        return response


class ExportManifestApi(PolicyView[None]):
    """``GET /api/v1/exports/{id}/manifest/``: what the file holds and how each identifier kind was handled."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "export.read"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {"GET": {409: (ExportErrorCode.NOT_READY,)}}
    policy_resource_type = "export"
    policy_deny_as_not_found = True

    @extend_schema(responses={200: inline_serializer("DeidentifiedExportManifest", {"type": serializers.CharField()})})
    def get(self, request: Request, pk: Any) -> Response:
        """The manifest."""
        return Response(access_ready_export(pk).manifest)


class ExportDeterminationApi(PolicyView[None]):
    """``/api/v1/exports/{id}/determination/``: what a compliance officer signs off (``GET``), and the sign-off."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "export.determine", "POST": "export.determine"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "GET": {409: (ExportErrorCode.NOT_READY,)},
        "POST": {
            403: (ExportErrorCode.SELF_DETERMINATION, ExportErrorCode.STUDY_TEAM_DETERMINATION),
            409: (ExportErrorCode.NOT_READY, ExportErrorCode.ALREADY_DETERMINED, ExportErrorCode.MANIFEST_MISMATCH),
        },
    }
    policy_resource_type = "export"
    policy_deny_as_not_found = True

    @extend_schema_serializer(component_name="DeidentifiedExportDetermination")
    class InputSerializer(StrictSerializer):
        statement = CleanCharField(max_length=STATEMENT_LENGTH, min_length=20, multiline=True)
        conditions = CleanCharField(max_length=STATEMENT_LENGTH, required=False, default="", multiline=True)
        manifest_sha256 = serializers.RegexField(r"^[0-9a-f]{64}$")

    @extend_schema(
        responses={200: inline_serializer("DeidentifiedExportReview", {"export": ExportSerializer()})},
    )
    def get(self, request: Request, pk: Any) -> Response:
        """The ready export and its manifest, with the SHA-256 a determination must name, and the study's history.

        ``study_history`` lists the study's earlier exports (ids, dates, counts) and how many of the
        participants exported now were enrolled since the previous one: what a differencing or a
        dummy-participant pattern would show.
        """
        export = access_ready_export(pk)
        return Response(
            {
                "export": ExportSerializer(export).data,
                "manifest": export.manifest,
                "study_history": study_export_history(export),
            }
        )

    @extend_schema(request=InputSerializer, responses={201: ExportSerializer})
    def post(self, request: Request, pk: Any) -> Response:
        """Sign off the determination of no actual knowledge; the export may then be downloaded."""
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        claims = claims_of(request)
        export_determine(
            export_id=pk,
            officer=str(claims.subject),
            officer_roles=list(claims.roles),
            statement=payload.validated_data["statement"],
            conditions=payload.validated_data["conditions"],
            covered_sha256=payload.validated_data["manifest_sha256"],
        )
        return Response(ExportSerializer(access_export(pk)).data, status=status.HTTP_201_CREATED)
