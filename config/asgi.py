"""ASGI entry point."""

import os

from django.core.asgi import get_asgi_application

# Servers and workers default to production: a forgotten variable must not run development mode.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

application = get_asgi_application()
