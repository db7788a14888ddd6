"""System checks of de-identified exports: a production deployment still on the shipped ZIP3 allow-list."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register

from services.exports.zip3 import zip3_table

PRODUCTION_SETTINGS = "config.settings.production"
ALLOWLIST_KIND = "allowlist"


@register()
def zip3_table_check(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """``exports.W001`` in production while exports use the shipped allow-list rather than a Census table.

    A warning, not an error: the allow-list keeps no prefix the 2000 or 2010
    Census found small and none without residents, but the rule names the
    current Census data and the allow-list is not it. ``make security-scan``
    reports it as a deployment step owed (:mod:`security.deploy_check`).
    """
    if str(getattr(settings, "SETTINGS_MODULE", "")) != PRODUCTION_SETTINGS:
        return []
    table = zip3_table()
    if table.kind != ALLOWLIST_KIND:
        return []
    return [
        Warning(
            f"De-identified exports use the shipped ZIP3 allow-list ({table.file_name}), not Census population data.",
            hint=(
                "Download the 2020 Census table P1 by ZCTA5 from data.census.gov and run "
                "`manage.py zip3_table_build --census-file <P1.csv> --vintage 2020 --table P1 --operator <you>`, "
                "or set DEIDENTIFIED_EXPORT_ZIP3_TABLE to a table built so."
            ),
            id="exports.W001",
        )
    ]
