"""Settings for ``make run`` on a developer machine: local services, generated secrets."""

from __future__ import annotations

import secrets

from config.settings.base import *  # noqa: F403
from config.settings.base import LOCAL_STATE_DIR, SECRET_KEY, STORAGES


def _local_secret_key() -> str:
    """Return a secret key generated once for this machine (mode 0600, outside the repository)."""
    path = LOCAL_STATE_DIR / "django-secret-key"
    if not path.exists():
        LOCAL_STATE_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(64), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()


SECRET_KEY = SECRET_KEY or _local_secret_key()

# Static assets (Swagger UI) straight from the installed packages, no collectstatic.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}

DEMO_SEED_ALLOWED = True
