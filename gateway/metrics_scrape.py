"""Figures read when ``/metrics`` is scraped: audit staging-to-chain lag, queue depths, dead letters.

Read live, not counted: the oldest staged-but-unchained audit event across
every community schema, and each task queue's and dead-letter queue's depth by
a passive declare (short timeout). A broker or database that cannot answer
never fails the scrape: ``gateway_scrape_source_up{source}`` says 0 instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connection
from kombu import Connection
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

PENDING_TABLE = "audit_pendingevent"


def oldest_staged_age_seconds() -> float:
    """Age of the oldest staged, not yet chained audit event in any community (0 when none waits)."""
    schemas = list(apps.get_model(settings.TENANT_MODEL).objects.values_list("schema_name", flat=True))
    oldest: datetime | None = None
    with connection.cursor() as cursor:
        for schema in schemas:
            table = f"{connection.ops.quote_name(schema)}.{connection.ops.quote_name(PENDING_TABLE)}"
            cursor.execute(f"SELECT min(staged_at) FROM {table}")  # noqa: S608 # nosec B608 - quoted schema names from the tenants table
            row = cursor.fetchone()
            if row and row[0] is not None and (oldest is None or row[0] < oldest):
                oldest = row[0]
    return 0.0 if oldest is None else max(0.0, (datetime.now(UTC) - oldest).total_seconds())


def queue_depths() -> dict[str, int]:
    """Messages waiting in each declared task queue and dead-letter queue (passive declare)."""
    depths: dict[str, int] = {}
    timeout = settings.HEALTH_CHECK_TIMEOUT_SECONDS
    with Connection(settings.RABBITMQ_URL, connect_timeout=timeout, transport_options={"max_retries": 0}) as broker:
        broker.ensure_connection(max_retries=1, timeout=math.ceil(timeout))
        channel: Any = broker.default_channel  # py-amqp's Channel; kombu types it as the bare protocol
        for queue in settings.CELERY_TASK_QUEUES:
            _, count, _ = channel.queue_declare(queue=queue.name, passive=True)
            depths[queue.name] = int(count)
    return depths


class ScrapeTimeCollector(Collector):
    """Collects the live figures at each scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield lag, depths and which sources answered."""
        up = GaugeMetricFamily("gateway_scrape_source_up", "Whether a scrape-time source answered.", labels=["source"])
        try:
            lag = oldest_staged_age_seconds()
        except Exception:  # noqa: BLE001 - an unreadable source is reported, never raised
            up.add_metric(["audit"], 0)
        else:
            up.add_metric(["audit"], 1)
            yield GaugeMetricFamily(
                "gateway_audit_chain_lag_seconds", "Age of the oldest staged, unchained audit event.", value=lag
            )
        try:
            depths = queue_depths()
        except Exception:  # noqa: BLE001 - a broker that is down is a figure, not a failed scrape
            up.add_metric(["broker"], 0)
        else:
            up.add_metric(["broker"], 1)
            waiting = GaugeMetricFamily("gateway_queue_depth", "Messages waiting in a task queue.", labels=["queue"])
            dead = GaugeMetricFamily("gateway_dead_letters", "Messages in a dead-letter queue.", labels=["queue"])
            for name, count in depths.items():
                target = dead if name.endswith(".dead-letter") else waiting
                target.add_metric([name.removesuffix(".dead-letter")], count)
            yield waiting
            yield dead
        yield up


def scrape_time_registry() -> CollectorRegistry:
    """A fresh registry holding the scrape-time collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScrapeTimeCollector())
    return registry
