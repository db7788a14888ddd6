"""De-identified export endpoints under ``/api/v1/exports/``.

A principal investigator with a recent second factor asks for a study's
dataset (``export.request``); a task builds it under Safe Harbor and seals it
with the community's key. The download (``export.download``, also elevated)
is decrypted as it streams, and the audit middleware records it before the
first byte leaves.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, ClassVar

from django.db import transaction
from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.exports import export_links
from core.serializers import StrictSerializer
from policy.views import PolicyView
from security.audit.context import annotate
from security.identity.authentication import claims_of
from security.tasks import export_enqueue
from services.exports.actions import deidentified_export_request
from services.exports.formats import CONTENT_TYPES
from services.exports.models import DeidentifiedExport, ExportFormat
from services.exports.selectors import (
    access_export,
    access_ready_export,
    access_study,
    deidentified_exports,
    export_plaintext,
)
from services.exports.tasks import deidentified_export_task
from tenants.context import community_required

BASE = "/api/v1/exports/"
LIST_LIMIT = 100


class ExportSerializer(serializers.ModelSerializer[DeidentifiedExport]):
    """An export's status and, once ready, where its file and manifest are."""

    links = serializers.SerializerMethodField()

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
            "links",
        ]

    def get_links(self, export: DeidentifiedExport) -> dict[str, str]:
        """Where to poll and, once ready, where to download."""
        return export_links(f"{BASE}{export.id}/", export.status)


class ExportListApi(PolicyView[None]):
    """``POST /api/v1/exports/``: ask for a study's dataset (202 and its id); ``GET``: the exports."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "export.list", "POST": "export.request"}
    policy_resource_type = "export"
    policy_collection = True

    @extend_schema_serializer(component_name="DeidentifiedExportRequest")
    class InputSerializer(StrictSerializer):
        study = serializers.UUIDField()
        format = serializers.ChoiceField(choices=ExportFormat.values)

    @extend_schema(request=InputSerializer, responses={202: ExportSerializer})
    def post(self, request: Request) -> Response:
        """Record the request; a worker builds the export once this transaction commits."""
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        study = access_study(payload.validated_data["study"])
        claims, community = claims_of(request), community_required(request)
        export = deidentified_export_request(
            study=study, export_format=payload.validated_data["format"], requested_by=str(claims.subject)
        )
        annotate(resource_id=str(export.id))
        transaction.on_commit(
            lambda: export_enqueue(export, task=deidentified_export_task, claims=claims, community=community)
        )
        data = ExportSerializer(export).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["links"]["self"]})

    @extend_schema(responses={200: ExportSerializer(many=True)})
    def get(self, request: Request) -> Response:
        """The newest exports of the community."""
        exports = deidentified_exports()[:LIST_LIMIT]
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
    policy_resource_type = "export"
    policy_deny_as_not_found = True

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, pk: Any) -> StreamingHttpResponse:
        """Stream the file; its size and SHA-256 are those the manifest states."""
        export = access_ready_export(pk)
        manifest: dict[str, Any] = export.manifest or {}
        response = StreamingHttpResponse(export_plaintext(export), content_type=CONTENT_TYPES[export.format])
        response["Content-Disposition"] = f'attachment; filename="{export.file_name}"'
        response["Content-Length"] = str(manifest["bytes"])
        response["Digest"] = "sha-256=" + base64.b64encode(bytes.fromhex(manifest["sha256"])).decode()
        return response


class ExportManifestApi(PolicyView[None]):
    """``GET /api/v1/exports/{id}/manifest/``: what the file holds and how each identifier kind was handled."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "export.read"}
    policy_resource_type = "export"
    policy_deny_as_not_found = True

    @extend_schema(responses={200: inline_serializer("DeidentifiedExportManifest", {"type": serializers.CharField()})})
    def get(self, request: Request, pk: Any) -> Response:
        """The manifest."""
        return Response(access_ready_export(pk).manifest)
