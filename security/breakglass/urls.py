"""Break-glass routes under ``/api/v1/``."""

from django.urls import path

from security.breakglass import apis

urlpatterns = [
    path("break-glass/", apis.BreakGlassApi.as_view(), name="break-glass"),
    path("break-glass/<uuid:pk>/revoke/", apis.BreakGlassRevokeApi.as_view(), name="break-glass-revoke"),
    path("break-glass/<uuid:pk>/review/", apis.BreakGlassReviewApi.as_view(), name="break-glass-review"),
]
