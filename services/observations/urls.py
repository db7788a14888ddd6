"""Observation routes under ``/api/v1/``."""

from django.urls import path

from services.observations import apis

urlpatterns = [
    path("observations/", apis.ObservationListApi.as_view(), name="observation-list"),
    path("observations/<uuid:pk>/", apis.ObservationDetailApi.as_view(), name="observation-detail"),
]
