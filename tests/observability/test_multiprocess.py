"""``/metrics`` under gunicorn adds up every worker's figures (prometheus_client's multiprocess mode).

gunicorn is started with serve.sh's own command and two workers. Requests sent many at once land on both
workers; a scrape, whichever worker answers it, must count all of them. Without the directory that
``config/gunicorn.py`` gives the workers, each worker would count only its own share.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.served import Served, gunicorn_serving

TOKEN = "metrics-" + "t" * 32
REQUESTS = 96
LIVE = re.compile(r'^gateway_http_requests_total\{[^}]*route="/health/live"[^}]*status="200"[^}]*\} (\S+)$', re.M)


@pytest.fixture(scope="module")
def served_and_directory(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Served, Path]]:
    """A two-worker gunicorn whose metrics directory this test can look into."""
    directory = tmp_path_factory.mktemp("multiproc")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GUNICORN_WORKERS", "2")
        patch.setenv("METRICS_TOKEN", TOKEN)
        patch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
        with django_db_blocker.unblock(), gunicorn_serving(directory.parent / "gunicorn.log") as server:
            yield server, directory


def _live_count(server: Served) -> float:
    status, body = server.request("GET", "/metrics", host="localhost", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body[:200]
    return sum(float(value) for value in LIVE.findall(body.decode()))


def test_a_scrape_adds_up_the_requests_every_worker_served(served_and_directory: tuple[Served, Path]) -> None:
    served, directory = served_and_directory
    before = _live_count(served)
    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(lambda _: served.request("GET", "/health/live", host="localhost", headers={})[0],
                                 range(REQUESTS)))  # fmt: skip
    assert statuses == [200] * REQUESTS

    writers = {path.stem.rsplit("_", 1)[-1] for path in directory.glob("counter_*.db")}
    assert len(writers) >= 2, "the requests did not reach both workers"  # else the sum below proves nothing
    for _ in range(4):  # each scrape may be answered by either worker
        assert _live_count(served) - before == REQUESTS
