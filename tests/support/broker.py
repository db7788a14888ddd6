"""RabbitMQ vhosts of a test's own on this machine's broker, made and dropped with ``rabbitmqctl``.

The suite's processes share ``RABBITMQ_URL``'s vhost; a test that leaves
messages there hands them to whatever consumes it next (``make run``'s worker,
say). A test that publishes for real, or runs a worker, takes a vhost of its own.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, unquote, urlsplit

import pytest
from django.conf import settings

from tests.support.databases import scoped_name


def body_text(body: bytes | str) -> str:
    """A received message's body as text (kombu hands over bytes, or text it has already decoded)."""
    return body.decode() if isinstance(body, bytes) else body


def rabbitmqctl(*args: str) -> None:
    """Run ``rabbitmqctl`` on this machine's broker; fail the test run, naming the command, when it fails."""
    command = shutil.which("rabbitmqctl")
    if command is None:
        pytest.fail("rabbitmqctl is not on PATH: these tests make a RabbitMQ vhost of their own with it")
    result = subprocess.run(  # noqa: S603  # nosec B603 - rabbitmqctl with arguments of this module
        [command, "-q", *args], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"rabbitmqctl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")


def fresh_vhost(suffix: str) -> str:
    """Make a vhost named after ``RABBITMQ_URL``'s and ``suffix``, with all rights for its user; the vhost's URL."""
    parts = urlsplit(settings.RABBITMQ_URL)
    base = unquote(parts.path[1:]) or "/"
    vhost = scoped_name("gateway" if base == "/" else base, suffix)
    subprocess.run(  # noqa: S603  # nosec B603 - an earlier run's vhost may be left; a missing one is no error
        [shutil.which("rabbitmqctl") or "rabbitmqctl", "-q", "delete_vhost", vhost],
        capture_output=True,
        timeout=120,
        check=False,
    )
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, parts.username or "guest", ".*", ".*", ".*")
    return parts._replace(path="/" + quote(vhost, safe="")).geturl()


def drop_vhost(url: str) -> None:
    """Delete the vhost of ``url`` and every message in it."""
    rabbitmqctl("delete_vhost", unquote(urlsplit(url).path[1:]))


@contextmanager
def own_vhost(suffix: str) -> Iterator[str]:
    """A fresh vhost for the block (its URL), dropped with its messages at the end."""
    url = fresh_vhost(suffix)
    try:
        yield url
    finally:
        drop_vhost(url)
