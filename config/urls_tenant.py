"""URLconf of a community's host: the ``/api/v1/`` APIs plus the common routes. No admin here."""

from django.urls import include, path

from config.urls_common import common_urlpatterns

urlpatterns = [
    path("api/v1/", include("security.urls")),
    path("api/v1/", include("security.audit.urls")),
    path("api/v1/", include("security.breakglass.urls")),
    path("api/v1/", include("services.studies.urls")),
    path("api/v1/", include("services.participants.urls")),
    path("api/v1/", include("services.consents.urls")),
    path("api/v1/", include("services.observations.urls")),
    path("api/v1/", include("services.exports.urls")),
    path("api/v1/", include("services.accounting.urls")),
    *common_urlpatterns,
]

handler400 = "gateway.problems.handler400"
handler403 = "gateway.problems.handler403"
handler404 = "gateway.problems.handler404"
handler500 = "gateway.problems.handler500"
