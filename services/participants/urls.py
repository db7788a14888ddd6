"""Participant routes under ``/api/v1/``."""

from django.urls import path

from services.consents import apis as consent_apis
from services.participants import apis

urlpatterns = [
    path("participants/", apis.ParticipantListApi.as_view(), name="participant-list"),
    path("participants/<uuid:pk>/", apis.ParticipantDetailApi.as_view(), name="participant-detail"),
    path("participants/<uuid:pk>/consents/", consent_apis.ConsentListApi.as_view(), name="consent-list"),
    path(
        "participants/<uuid:pk>/consents/<uuid:consent_id>/withdraw/",
        consent_apis.ConsentWithdrawApi.as_view(),
        name="consent-withdraw",
    ),
    path("participants/<uuid:pk>/disclosures/", apis.DisclosureAccountingApi.as_view(), name="participant-disclosures"),
]
