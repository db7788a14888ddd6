"""Consent routes under ``/api/v1/``: a participant's consents, and withdrawing one."""

from django.urls import path

from services.consents import apis

urlpatterns = [
    path("participants/<uuid:pk>/consents/", apis.ConsentListApi.as_view(), name="consent-list"),
    path(
        "participants/<uuid:pk>/consents/<uuid:consent_id>/withdraw/",
        apis.ConsentWithdrawApi.as_view(),
        name="consent-withdraw",
    ),
    path(
        "participants/<uuid:pk>/consents/<uuid:consent_id>/authorization/",
        apis.ConsentAuthorizationApi.as_view(),
        name="consent-authorization",
    ),
]
