"""The Celery application; its broker is RabbitMQ (``RABBITMQ_URL``)."""

from __future__ import annotations

import os

from celery import Celery

# Servers and workers default to production: a forgotten variable must not run development mode.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("compliance_gateway")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
