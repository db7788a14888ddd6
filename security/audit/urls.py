"""Audit routes under ``/api/v1/audit/``."""

from django.urls import path

from security.audit import apis

urlpatterns = [
    path("audit/events/", apis.AuditEventListApi.as_view(), name="audit-events"),
    path("audit/exports/", apis.AuditExportListApi.as_view(), name="audit-exports"),
    path("audit/exports/<uuid:pk>/", apis.AuditExportDetailApi.as_view(), name="audit-export"),
    path("audit/exports/<uuid:pk>/download/", apis.AuditExportDownloadApi.as_view(), name="audit-export-download"),
    path("audit/exports/<uuid:pk>/manifest/", apis.AuditExportManifestApi.as_view(), name="audit-export-manifest"),
    path("audit/keys/", apis.AuditKeysApi.as_view(), name="audit-keys"),
]
