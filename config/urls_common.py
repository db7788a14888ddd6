"""Routes every host serves: health probes, JWKS, the OpenAPI schema and its docs page."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from gateway import health
from security.apis import JwksApi

common_urlpatterns = [
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path(".well-known/jwks.json", JwksApi.as_view(), name="jwks"),
    path(
        "api/schema/",
        SpectacularAPIView.as_view(authentication_classes=(), permission_classes=()),
        name="api-schema",
    ),
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", authentication_classes=(), permission_classes=()),
        name="api-docs",
    ),
]
