"""WSGI entry point (gunicorn ``config.wsgi:application``)."""

import os

from django.core.wsgi import get_wsgi_application

# Servers and workers default to production: a forgotten variable must not run development mode.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

application = get_wsgi_application()
