"""Participant routes under ``/api/v1/``."""

from django.urls import path

from services.participants import apis

urlpatterns = [
    path("participants/<uuid:pk>/disclosures/", apis.DisclosureAccountingApi.as_view(), name="participant-disclosures"),
]
