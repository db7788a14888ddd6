"""The Celery application, its queues and its workers' logging; the broker is RabbitMQ (``RABBITMQ_URL``)."""

from __future__ import annotations

import logging.config
import os

from celery import Celery
from celery.signals import celeryd_init, setup_logging
from kombu import Exchange, Queue

# Servers and workers default to production: a forgotten variable must not run development mode.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

# Every task, shared or class-based, runs as core.tasks.GatewayTask: a runaway task is dead-lettered at once.
app = Celery("compliance_gateway", task_cls="core.tasks:GatewayTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def task_queues(names: tuple[str, ...], *, exchange: str, dead_letter_exchange: str) -> list[Queue]:
    """Each task queue (quorum, dead-lettering to ``dead_letter_exchange``) and its dead-letter queue."""
    topic = Exchange(exchange, type="topic", durable=True)
    dead_letters = Exchange(dead_letter_exchange, type="direct", durable=True)
    queues = []
    for name in names:
        queues.append(
            Queue(
                name,
                topic,
                routing_key=name,
                durable=True,
                queue_arguments={
                    "x-queue-type": "quorum",
                    "x-dead-letter-exchange": dead_letter_exchange,
                    "x-dead-letter-routing-key": name,
                    "x-delivery-limit": 10,
                },
            )
        )
        queues.append(
            Queue(
                f"{name}.dead-letter",
                dead_letters,
                routing_key=name,
                durable=True,
                queue_arguments={"x-queue-type": "quorum"},
            )
        )
    return queues


def declare_queues(url: str | None = None) -> None:
    """Declare every task queue and dead-letter queue (idempotent), so no dead letter is ever dropped.

    Args:
        url: the broker to declare them on; the app's own when omitted.
    """
    with app.connection_for_write(url) as connection:
        channel = connection.default_channel
        for queue in app.conf.task_queues:
            queue.bind(channel).declare()


@celeryd_init.connect
def _declare_on_worker_start(**kwargs: object) -> None:
    declare_queues()


@setup_logging.connect
def _keep_the_service_logging(**kwargs: object) -> None:
    """Apply ``LOGGING`` in a worker instead of Celery's own set-up (security review finding 16).

    Celery's default set-up replaces the root logger's handlers, and with them
    ``WithholdExceptionMessageFilter``: task failures would be logged with
    their exception messages, which may carry PHI. A receiver of this signal
    takes the set-up over (``CELERY_WORKER_HIJACK_ROOT_LOGGER`` is off as well).
    """
    from django.conf import settings  # noqa: PLC0415  # the worker loads settings after this module

    logging.config.dictConfig(settings.LOGGING)
