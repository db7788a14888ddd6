"""System checks on identity settings, run at start-up and by ``manage.py check``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

MAXIMUM_LEEWAY_SECONDS = 60


@register()
def check_token_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Refuse token settings outside what the product promises."""
    errors: list[CheckMessage] = []
    if not 0 <= settings.JWT_LEEWAY_SECONDS <= MAXIMUM_LEEWAY_SECONDS:
        errors.append(Error("JWT_LEEWAY_SECONDS must be between 0 and 60", id="security.E001"))
    if settings.ACCESS_TOKEN_TTL_SECONDS <= 0 or settings.REFRESH_TOKEN_TTL_SECONDS <= 0:
        errors.append(Error("token lifetimes must be positive", id="security.E002"))
    return errors
