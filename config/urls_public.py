"""URLconf of the platform hosts (``PUBLIC_HOSTS``): Django admin plus the common routes."""

from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, path

from config.urls_common import common_urlpatterns
from gateway.metrics import metrics_view

urlpatterns: list[URLPattern | URLResolver] = [*common_urlpatterns, path("metrics", metrics_view, name="metrics")]
if settings.ADMIN_ENABLED:
    urlpatterns.append(path("admin/", admin.site.urls))

handler400 = "gateway.problems.handler400"
handler403 = "gateway.problems.handler403"
handler404 = "gateway.problems.handler404"
handler500 = "gateway.problems.handler500"
