"""Admin sign-in with a second factor: staff accounts need TOTP (or a recovery code) as well."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from core.errors import ApplicationError
from core.http import client_bucket
from security.errors import IdentityErrorCode
from security.identity import throttle
from security.identity.mfa import verify_second_factor
from security.models import User


class SecondFactorAdminLoginForm(AdminAuthenticationForm):
    """Email, password and a one-time code; a wrong code counts as a failed sign-in."""

    otp = forms.CharField(
        label="One-time code",
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def confirm_login_allowed(self, user: Any) -> None:
        """After the password: staff only, and a second factor that checks out."""
        super().confirm_login_allowed(user)
        if not isinstance(user, User) or self.request is None:
            raise self._refusal()
        try:
            attempt = throttle.reserve_login_attempt(email=user.email, ip=client_bucket(self.request))
        except ApplicationError:
            raise self._refusal() from None
        if user.mfa_enabled and verify_second_factor(user=user, otp=str(self.cleaned_data.get("otp", ""))):
            attempt.succeeded()
            return
        attempt.failed()
        raise self._refusal()

    def _refusal(self) -> ValidationError:
        return ValidationError(
            self.error_messages["invalid_login"],
            code=IdentityErrorCode.INVALID_LOGIN,
            params={"username": self.username_field.verbose_name},
        )
