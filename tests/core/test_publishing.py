"""Publishing a task survives a pooled broker connection that was lost, and every publisher goes through it.

A process keeps its broker connections in a pool. When the broker drops one
(a restart, a fail-over) or a forked child shuts the socket it inherited
(``manage.py migrate --parallel`` forks), the next publish used to fail: the
audit chain waited for the sweep, a break-glass notice for its sweep, and an
export was marked failed for its requester. :func:`core.tasks.publish` retries
once, at once, on a new connection. These tests lose the connection for real,
against the real RabbitMQ, and see the message routed to its queue.
"""

from __future__ import annotations

import multiprocessing
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from kombu import Connection, Exchange, Queue

from config.celery import app as celery_app
from config.celery import declare_queues
from security.audit.sequencer import enqueue_chain
from security.breakglass.tasks import enqueue_notification
from security.tasks import enqueue_for_caller
from services.exports.tasks import deidentified_export_task
from tenants.models import Community
from tests.support.broker import body_text, own_vhost


def _reset_the_pooled_connection() -> None:
    """What a broker restart does to an idle connection: the socket is closed under it."""
    with celery_app.producer_pool.acquire(block=True) as producer:
        assert producer.connection is not None
        producer.connection.connection.transport.sock.shutdown(socket.SHUT_RDWR)


def _fork_a_child() -> None:
    """What ``migrate --parallel`` does: a forked child that exits shuts the socket it inherited."""
    with multiprocessing.get_context("fork").Pool(1) as pool:
        pool.map(len, [[1]])


def _publish_to(url: str) -> None:
    """Point the app's connection and producer pools at ``url`` (kombu keeps one pool per URL)."""
    celery_app.conf.update(broker_url=url)
    # Celery builds both pools again from the URL when next asked (private attributes, set in their __init__).
    vars(celery_app)["_pool"] = None
    vars(celery_app.amqp)["_producer_pool"] = None


@pytest.fixture(scope="module", autouse=True)
def broker_of_its_own() -> Iterator[None]:
    """The module publishes into a vhost of its own, dropped with every message afterwards.

    Its messages name no real grant, export or community: left on the suite's vhost they would reach
    whichever worker consumes it next (``make run``'s).
    """
    shared = str(celery_app.conf.broker_url)
    with own_vhost("_publishing") as url:
        _publish_to(url)
        try:
            yield
        finally:
            _publish_to(shared)


LOSSES = [
    pytest.param(_reset_the_pooled_connection, id="the broker dropped the connection"),
    pytest.param(_fork_a_child, id="a forked child shut the inherited socket"),
]


@contextmanager
def watching(routing_key: str) -> Iterator[Callable[[str], bool]]:
    """A queue of this test's own, bound beside the task queue: it gets a copy of every message routed there.

    The task queues themselves are shared with the rest of the run, whose commits queue chain tasks by the
    thousand; this one holds only what was published while the test watched.
    """
    with Connection(celery_app.conf.broker_url) as connection:
        channel: Any = connection.default_channel
        name = f"probe-{uuid.uuid4()}"
        Queue(name, Exchange(settings.TASK_EXCHANGE, type="topic"), routing_key=routing_key, exclusive=True)(
            channel
        ).declare()

        def taken(marker: str) -> bool:
            while (message := channel.basic_get(name, no_ack=True)) is not None:
                if marker in body_text(message.body):
                    return True
            return False

        yield taken


def _chain(marker: str) -> bool:
    return enqueue_chain(marker)


def _notice(marker: str) -> bool:
    return enqueue_notification(community="alpha", grant_id=marker)


def _export(marker: str) -> bool:
    refused: list[bool] = []
    claims = SimpleNamespace(subject=marker, auth_time=1, amr=["pwd", "mfa"])
    queued = enqueue_for_caller(
        deidentified_export_task,
        claims=claims,
        community=Community(slug="alpha"),
        on_refused=lambda: refused.append(True),
        export_id=marker,
    )
    return queued and not refused


PUBLISHERS = [
    pytest.param(_chain, "audit", id="audit chaining"),
    pytest.param(_notice, "default", id="break-glass notice"),
    pytest.param(_export, "default", id="export for its caller"),
]


@pytest.mark.parametrize("lose", LOSSES)
@pytest.mark.parametrize(("publisher", "queue"), PUBLISHERS)
def test_a_publish_after_the_connection_was_lost_reaches_its_queue(
    publisher: Callable[[str], bool], queue: str, lose: Callable[[], None]
) -> None:
    declare_queues()
    assert publisher(f"warm-{uuid.uuid4()}")  # the pool now holds a connection
    lose()
    marker = f"after-{uuid.uuid4()}"

    with watching(queue) as taken:
        assert publisher(marker)
        assert taken(marker)  # published with confirms: it was routed before the call returned


ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "core", "gateway", "operations", "policy", "security", "services", "tenants", "vault")
_SENDS = re.compile(r"\.(apply_async|delay|send_task)\(")


def test_every_publisher_of_the_service_goes_through_publish() -> None:
    sending = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "core" / "tasks.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if _SENDS.search(line)
    ]
    assert sending == []
