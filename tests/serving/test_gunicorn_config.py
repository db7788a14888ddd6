"""``config/gunicorn.py``: gevent, the database-connection bound, and the memory limit that recycles a worker.

The bound is read from the module as gunicorn loads it; the memory limit is
proven on a real gunicorn (serve.sh's command) whose limit is set below any
worker's resident set: after a request the worker that served it exits and
the arbiter boots another.
"""

from __future__ import annotations

import importlib
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from gunicorn.workers.ggevent import GeventWorker  # type: ignore[import-untyped]  # gunicorn ships no type hints

from config import gunicorn as gunicorn_settings
from core.limits import HEADER_FIELD_MAX_BYTES, HEADER_FIELDS_MAX, REQUEST_LINE_MAX_BYTES
from tests.support.served import Served, gunicorn_command, gunicorn_serving

BOOTED = re.compile(r"Booting worker with pid: (\d+)")


def _reloaded(monkeypatch: pytest.MonkeyPatch, **environment: str) -> Any:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return importlib.reload(gunicorn_settings)


@pytest.fixture(autouse=True)
def _restore_module() -> Iterator[None]:
    yield
    with pytest.MonkeyPatch.context() as clean:  # whatever order the test's own monkeypatch undoes in
        for name in [name for name in os.environ if name.startswith("GUNICORN_")]:
            clean.delenv(name)
        importlib.reload(gunicorn_settings)


def test_serve_sh_serves_with_four_gevent_workers_and_no_preload(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _reloaded(monkeypatch)
    assert "--config python:config.gunicorn" in gunicorn_command()
    worker_module, worker_class = settings.worker_class.rsplit(".", 1)
    assert issubclass(getattr(importlib.import_module(worker_module), worker_class), GeventWorker)
    assert settings.workers == 4
    assert settings.preload_app is False
    assert settings.max_requests_jitter > 0
    assert "DATABASE_CONN_MAX_AGE=0" in settings.raw_env
    assert f"DATABASE_POOL_MAX_SIZE={settings.worker_connections}" in settings.raw_env  # a pool per worker


def test_gunicorns_limits_are_the_ones_the_api_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _reloaded(monkeypatch)

    assert settings.limit_request_line == REQUEST_LINE_MAX_BYTES
    assert settings.limit_request_fields == HEADER_FIELDS_MAX
    assert settings.limit_request_field_size == HEADER_FIELD_MAX_BYTES


def test_workers_times_greenlets_is_the_database_budget_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _reloaded(monkeypatch, GUNICORN_WORKERS="4", GUNICORN_DB_CONNECTION_BUDGET="80")
    assert settings.workers * settings.worker_connections == 80
    settings = _reloaded(monkeypatch, GUNICORN_WORKERS="3", GUNICORN_DB_CONNECTION_BUDGET="80")
    assert settings.workers * settings.worker_connections <= 80


def test_a_configuration_past_the_database_budget_refuses_to_load(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError, match="exceeds GUNICORN_DB_CONNECTION_BUDGET"):
        _reloaded(monkeypatch, GUNICORN_WORKERS="4", GUNICORN_WORKER_CONNECTIONS="30")
    with pytest.raises(RuntimeError, match="exceeds GUNICORN_DB_CONNECTION_BUDGET"):
        _reloaded(monkeypatch, GUNICORN_WORKERS="100", GUNICORN_DB_CONNECTION_BUDGET="80")


def test_the_bind_address_comes_from_gunicorn_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _reloaded(monkeypatch, GUNICORN_BIND="0.0.0.0:8080").bind == ["0.0.0.0:8080"]


@pytest.fixture
def tiny_memory_limit(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """gunicorn as serve.sh starts it, one worker, whose memory limit (1 MiB) every worker exceeds."""
    with pytest.MonkeyPatch.context() as patch, django_db_blocker.unblock():
        patch.setenv("GUNICORN_WORKERS", "1")
        patch.setenv("GUNICORN_WORKER_MAX_RSS_MB", "1")
        with gunicorn_serving(tmp_path_factory.mktemp("rss") / "gunicorn.log") as served:
            yield served


def test_a_worker_above_its_memory_limit_finishes_the_request_and_is_replaced(tiny_memory_limit: Served) -> None:
    status, _ = tiny_memory_limit.request("GET", "/health/live", host="localhost", headers={})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(BOOTED.findall(tiny_memory_limit.log.read_text())) < 3:
        time.sleep(0.2)
    again, _ = tiny_memory_limit.request("GET", "/health/live", host="localhost", headers={})
    log = tiny_memory_limit.stopped_log()

    assert status == 200
    assert again == 200
    assert "above GUNICORN_WORKER_MAX_RSS_MB=1, recycling" in log
    assert len(set(BOOTED.findall(log))) >= 2
