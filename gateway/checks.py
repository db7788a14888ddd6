"""System checks of the gateway's settings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

MINIMUM_NOTICE = timedelta(days=90)


@register()
def check_api_versions(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """A deprecated version announces its sunset at least three months ahead, and names its successor."""
    errors: list[CheckMessage] = []
    for version, entry in settings.API_VERSIONS.items():
        deprecated, sunset = entry.get("deprecated"), entry.get("sunset")
        if sunset is not None and (deprecated is None or sunset - deprecated < MINIMUM_NOTICE):
            errors.append(
                Error(f"API {version}: Sunset must come at least 90 days after Deprecation", id="gateway.E001")
            )
        if deprecated is not None and not entry.get("successor"):
            errors.append(Error(f"API {version}: a deprecated version must name its successor", id="gateway.E002"))
    return errors
