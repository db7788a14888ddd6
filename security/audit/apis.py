"""Audit endpoints under ``/api/v1/audit/``: events, exports with signed manifests, public keys.

Events and exports are for auditors and compliance officers (the policy's
``audit.read`` and ``audit.export``); the public keys are public, so that an
auditor can obtain them without an account and apart from any export.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, ClassVar

from django.db import transaction
from django.http import FileResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import BasePagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.contract import ApiContract, ProblemCodes
from core.errors import Conflict, NotFound
from core.exports import ExportStatus, export_links
from core.limits import AUDIT_PAGE_SIZE_DEFAULT, AUDIT_PAGE_SIZE_MAX
from core.pagination import BoundedCursor, CursorField, PageSizeField, paginated_response
from core.serializers import StrictQuery, StrictSerializer
from policy.views import PolicyView
from security.audit.checkpoints import current_log, public_keys_pem, published_keys
from security.audit.errors import AuditErrorCode
from security.audit.models import AuditEvent, AuditExport, ExportFormat
from security.audit.offline import key_id
from security.audit.selectors import audit_events
from security.audit.tasks import audit_export_task, export_path
from security.identity.authentication import claims_of
from security.tasks import export_enqueue
from tenants.context import community_required


class EventCursor(BoundedCursor):
    """Cursor pagination in sequence order; the cursor is opaque and filters are applied again."""

    ordering = "sequence"
    page_size = AUDIT_PAGE_SIZE_DEFAULT
    max_page_size = AUDIT_PAGE_SIZE_MAX


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    """An event as stored, hashes included."""

    class Meta:
        model = AuditEvent
        exclude: ClassVar[list[str]] = ["id"]


class EventQuerySerializer(StrictQuery):
    """Filters of the event list; unknown parameters are refused, not ignored."""

    actor = serializers.CharField(max_length=64, required=False)
    action = serializers.CharField(max_length=64, required=False)
    resource_type = serializers.CharField(max_length=64, required=False)
    resource_id = serializers.CharField(max_length=64, required=False)
    participant = serializers.CharField(max_length=32, required=False)
    outcome = serializers.ChoiceField(choices=["allow", "deny"], required=False)
    break_glass = serializers.BooleanField(required=False, allow_null=True, default=None)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    cursor = CursorField()
    limit = PageSizeField(maximum=AUDIT_PAGE_SIZE_MAX)


class AuditEventListApi(PolicyView[None]):
    """``GET /api/v1/audit/events/``: filter the community's audit events; cursor pagination."""

    pagination_class: ClassVar[type[BasePagination] | None] = EventCursor
    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "audit.read"}
    policy_resource_type = "audit"
    policy_collection = True

    @extend_schema(parameters=[EventQuerySerializer], responses={200: AuditEventSerializer(many=True)})
    def get(self, request: Request) -> Response:
        """A page of events in sequence order."""
        query = EventQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        filters = {key: value for key, value in query.validated_data.items() if key not in ("cursor", "limit")}
        return paginated_response(
            serializer_class=AuditEventSerializer,
            queryset=audit_events(**filters),
            request=request,
            view=self,
        )


class AuditExportSerializer(serializers.ModelSerializer[AuditExport]):
    """An export's status; its manifest once ready."""

    links = serializers.SerializerMethodField()

    class Meta:
        model = AuditExport
        fields: ClassVar[list[str]] = [
            "id",
            "format",
            "since",
            "until",
            "status",
            "requested_by",
            "created_at",
            "finished_at",
            "error",
            "manifest",
            "links",
        ]

    def get_links(self, export: AuditExport) -> dict[str, str]:
        """Where to poll and, once ready, where to download."""
        return export_links(f"/api/v1/audit/exports/{export.id}/", export.status)


class AuditExportListApi(PolicyView[None]):
    """``POST /api/v1/audit/exports/``: ask for an export (202 and its id); ``GET``: the exports."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "audit.read", "POST": "audit.export"}
    policy_resource_type = "audit"
    policy_collection = True

    @extend_schema_serializer(component_name="AuditExportRequest")
    class InputSerializer(StrictSerializer):
        format = serializers.ChoiceField(choices=ExportFormat.values)
        since = serializers.DateTimeField()
        until = serializers.DateTimeField(required=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            """Cross-field checks."""
            until = attrs.setdefault("until", timezone.now())
            if until > timezone.now():
                raise serializers.ValidationError(
                    {"until": serializers.ErrorDetail("must not be in the future", code=AuditErrorCode.IN_THE_FUTURE)}
                )
            if attrs["since"] >= until:
                raise serializers.ValidationError(
                    {"since": serializers.ErrorDetail("must be before until", code=AuditErrorCode.INVALID_PERIOD)}
                )
            return attrs

    @extend_schema(request=InputSerializer, responses={202: AuditExportSerializer})
    def post(self, request: Request) -> Response:
        """Create the export; a worker builds it."""
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        claims, community = claims_of(request), community_required(request)
        export = AuditExport.objects.create(requested_by=str(claims.subject), **payload.validated_data)
        transaction.on_commit(
            lambda: export_enqueue(export, task=audit_export_task, claims=claims, community=community)
        )
        data = AuditExportSerializer(export).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["links"]["self"]})

    @extend_schema(responses={200: AuditExportSerializer(many=True)})
    def get(self, request: Request) -> Response:
        """The 100 newest exports."""
        return Response(AuditExportSerializer(AuditExport.objects.all()[:100], many=True).data)


def _export(pk: Any) -> AuditExport:
    export = AuditExport.objects.filter(pk=pk).first()
    if export is None:
        raise NotFound("No such export.", code=AuditErrorCode.EXPORT_NOT_FOUND)
    return export


class AuditExportDetailApi(PolicyView[None]):
    """``GET /api/v1/audit/exports/{id}/``: status, and the manifest once ready."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "audit.read"}
    policy_resource_type = "audit_export"

    @extend_schema(responses={200: AuditExportSerializer})
    def get(self, request: Request, pk: Any) -> Response:
        """Describe the export."""
        return Response(AuditExportSerializer(_export(pk)).data)


def _ready(pk: Any) -> AuditExport:
    export = _export(pk)
    if export.status != ExportStatus.READY:
        raise Conflict(f"The export is {export.status}.", code=AuditErrorCode.EXPORT_NOT_READY)
    return export


class AuditExportDownloadApi(PolicyView[None]):
    """``GET /api/v1/audit/exports/{id}/download/``: the file (its download is itself audited)."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "audit.export"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {
        "GET": {409: (AuditErrorCode.EXPORT_NOT_READY,), 404: (AuditErrorCode.EXPORT_FILE_MISSING,)}
    }
    policy_resource_type = "audit_export"

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, pk: Any) -> FileResponse:
        """Stream the file."""
        export = _ready(pk)
        path = export_path(export)
        if not path.is_file():
            raise NotFound("The export's file is gone.", code=AuditErrorCode.EXPORT_FILE_MISSING)
        response = FileResponse(path.open("rb"), as_attachment=True, filename=export.file_name)
        manifest: dict[str, Any] = export.manifest or {}  # a ready export always has its manifest
        response.headers["Digest"] = "sha-256=" + base64.b64encode(bytes.fromhex(manifest["sha256"])).decode()
        return response


class AuditExportManifestApi(PolicyView[None]):
    """``GET /api/v1/audit/exports/{id}/manifest/``: the signed manifest, as the file beside the export."""

    policy_actions: ClassVar[Mapping[str, str]] = {"GET": "audit.export"}
    problem_codes: ClassVar[Mapping[str, ProblemCodes]] = {"GET": {409: (AuditErrorCode.EXPORT_NOT_READY,)}}
    policy_resource_type = "audit_export"

    @extend_schema(responses={200: inline_serializer("AuditManifest", {"type": serializers.CharField()})})
    def get(self, request: Request, pk: Any) -> Response:
        """The manifest."""
        return Response(_ready(pk).manifest)


class AuditKeysApi(ApiContract, APIView):
    """``GET /api/v1/audit/keys/``: the public keys that verify this community's checkpoints and manifests.

    Every version of the community's own signing key, then those of the shared
    key that signed its statements before communities had keys of their own.
    """

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(
        responses={
            200: inline_serializer("AuditKeys", {"keys": serializers.ListField(), "pem": serializers.CharField()})
        }
    )
    def get(self, request: Request) -> Response:
        """Every version, with its key id, as PEM."""
        listed = [
            {
                "key_id": key_id(raw),
                "name": name,
                "version": version,
                "algorithm": "Ed25519",
                "public_key": base64.b64encode(raw).decode(),
            }
            for name, version, raw in published_keys.for_log(current_log())
        ]
        return Response({"keys": listed, "pem": public_keys_pem()}, headers={"Cache-Control": "public, max-age=300"})
