"""The Celery application; its broker is RabbitMQ (``RABBITMQ_URL``)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import celeryd_init

# Servers and workers default to production: a forgotten variable must not run development mode.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("compliance_gateway")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def declare_queues() -> None:
    """Declare every task queue and dead-letter queue (idempotent), so no dead letter is ever dropped."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in app.conf.task_queues:
            queue.bind(channel).declare()


@celeryd_init.connect
def _declare_on_worker_start(**kwargs: object) -> None:
    declare_queues()
