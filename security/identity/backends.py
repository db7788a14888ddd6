"""The Django authentication backend (admin sign-in), under the same lockout as the API."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from core.errors import ApplicationError
from core.http import client_bucket
from security.identity import throttle
from security.models import User, normalize_email


class ThrottledEmailBackend(ModelBackend):
    """Email and password, counted against the per-account and per-address limits.

    A right password is only half a sign-in (the admin form checks the second
    factor next), so it gives its attempt back without clearing earlier
    failures; the form reports the final outcome. Locked out, or Redis
    unreachable: ``PermissionDenied``, which makes Django refuse the sign-in
    without trying further backends (fail closed).
    """

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
        """Authenticate, reserving the attempt first and reporting how it ended."""
        if request is None or username is None or password is None:
            return None
        email = normalize_email(username)
        try:
            attempt = throttle.reserve_login_attempt(email=email, ip=client_bucket(request))
        except ApplicationError:
            raise PermissionDenied from None
        user = super().authenticate(request, username=email, password=password, **kwargs)
        if isinstance(user, User):
            attempt.released()
            return user
        attempt.failed()
        return None
