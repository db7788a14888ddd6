"""Settings for ``make run`` on a developer machine: local services, generated secrets."""

from __future__ import annotations

from config.settings.base import *  # noqa: F403
from config.settings.base import LOCAL_STATE_DIR, SECRET_KEY, STORAGES
from security.local_secrets import read_or_create_secret

# Generated once for this machine (mode 0600, outside the repository).
SECRET_KEY = SECRET_KEY or read_or_create_secret(LOCAL_STATE_DIR / "django-secret-key", nbytes=64)

# Static assets (Swagger UI) straight from the installed packages, no collectstatic.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}

DEMO_SEED_ALLOWED = True
