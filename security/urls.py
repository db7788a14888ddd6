"""Identity routes under ``/api/v1/`` on a community's host."""

from django.urls import path

from security import apis

urlpatterns = [
    path("auth/token", apis.TokenApi.as_view(), name="auth-token"),
    path("auth/refresh", apis.RefreshApi.as_view(), name="auth-refresh"),
    path("auth/logout", apis.LogoutApi.as_view(), name="auth-logout"),
    path("auth/mfa/totp", apis.TotpEnrollApi.as_view(), name="auth-mfa-totp"),
    path("auth/mfa/totp/confirm", apis.TotpConfirmApi.as_view(), name="auth-mfa-totp-confirm"),
    path("me", apis.MeApi.as_view(), name="me"),
]
