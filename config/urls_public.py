"""URLconf of the platform hosts (``PUBLIC_HOSTS``): Django admin plus the common routes."""

from django.contrib import admin
from django.urls import path

from config.urls_common import common_urlpatterns

urlpatterns = [
    path("admin/", admin.site.urls),
    *common_urlpatterns,
]

handler400 = "gateway.problems.handler400"
handler403 = "gateway.problems.handler403"
handler404 = "gateway.problems.handler404"
handler500 = "gateway.problems.handler500"
