"""A URLconf with views that fail, to prove no failure leaks a stack trace."""

from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls_tenant import urlpatterns as tenant_urlpatterns

SECRET_IN_MESSAGE = "participant Jane Doe MRN 12345"


class CrashingApi(APIView):
    authentication_classes = ()
    permission_classes = ()

    def get(self, request: Request) -> Response:
        raise RuntimeError(SECRET_IN_MESSAGE)


def crashing_view(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(SECRET_IN_MESSAGE)


urlpatterns = [
    path("api/v1/crash", CrashingApi.as_view()),
    path("plain-crash", crashing_view),
    *tenant_urlpatterns,
]

handler404 = "gateway.problems.handler404"
handler500 = "gateway.problems.handler500"
