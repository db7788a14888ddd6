"""The community URLconf plus routes someone forgot to guard: the walk must catch both."""

from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls_tenant import urlpatterns as tenant_urlpatterns


class ForgottenApi(APIView):
    """Opted out of policy without review."""

    permission_classes = (AllowAny,)

    def get(self, request: Request) -> Response:
        return Response({})


class HalfGuardedApi(APIView):
    """Guarded for GET, but POST declares no action."""

    policy_actions = {"GET": "study.read"}

    def get(self, request: Request) -> Response:
        return Response({})

    def post(self, request: Request) -> Response:
        return Response({})


def plain_django_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("no DRF, no policy")


urlpatterns = [
    *tenant_urlpatterns,
    path("api/v1/forgotten", ForgottenApi.as_view(), name="forgotten"),
    path("api/v1/half", HalfGuardedApi.as_view(), name="half"),
    path("api/v1/plain", plain_django_view, name="plain"),
    path("api/v1/not-really-jwks", ForgottenApi.as_view(), name="jwks"),
]
