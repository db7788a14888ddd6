"""Accounting of disclosures routes under ``/api/v1/``."""

from django.urls import path

from services.accounting import apis

urlpatterns = [
    path("participants/<uuid:pk>/disclosures/", apis.DisclosureAccountingApi.as_view(), name="participant-disclosures"),
    path(
        "participants/<uuid:pk>/recorded-disclosures/",
        apis.RecordedDisclosureListApi.as_view(),
        name="participant-recorded-disclosures",
    ),
    path("accounting-requests/", apis.AccountingRequestListApi.as_view(), name="accounting-request-list"),
    path("accounting-requests/<uuid:pk>/", apis.AccountingRequestDetailApi.as_view(), name="accounting-request-detail"),
    path(
        "accounting-requests/<uuid:pk>/extension/",
        apis.AccountingExtensionApi.as_view(),
        name="accounting-request-extension",
    ),
    path(
        "accounting-requests/<uuid:pk>/provide/", apis.AccountingProvideApi.as_view(), name="accounting-request-provide"
    ),
    path("accounting-requests/<uuid:pk>/copy/", apis.AccountingCopyApi.as_view(), name="accounting-request-copy"),
    path("accounting-suspensions/", apis.SuspensionListApi.as_view(), name="accounting-suspension-list"),
]
