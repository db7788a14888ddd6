"""Routes of de-identified exports, under ``/api/v1/``."""

from django.urls import path

from services.exports import apis

urlpatterns = [
    path("exports/", apis.ExportListApi.as_view(), name="exports"),
    path("exports/<uuid:pk>/", apis.ExportDetailApi.as_view(), name="export"),
    path("exports/<uuid:pk>/download/", apis.ExportDownloadApi.as_view(), name="export-download"),
    path("exports/<uuid:pk>/manifest/", apis.ExportManifestApi.as_view(), name="export-manifest"),
    path("exports/<uuid:pk>/determination/", apis.ExportDeterminationApi.as_view(), name="export-determination"),
]
