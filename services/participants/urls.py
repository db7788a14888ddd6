"""Participant routes under ``/api/v1/`` (the accounting of disclosures is the accounting app's)."""

from django.urls import path

from services.participants import apis

urlpatterns = [
    path("participants/", apis.ParticipantListApi.as_view(), name="participant-list"),
    path("participants/search/", apis.ParticipantSearchApi.as_view(), name="participant-search"),
    path("participants/<uuid:pk>/", apis.ParticipantDetailApi.as_view(), name="participant-detail"),
]
