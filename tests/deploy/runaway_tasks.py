"""Test-only Celery tasks a real worker loads with ``--include`` (tests/deploy/test_entrypoint_processes.py).

``runaway`` ignores its soft time limit, so only the hard limit can stop it; ``mark`` is quick and leaves a
file behind, so a test can see that the worker still serves after a child was killed. Both are registered on
the project's own application and go to the default queue (no route names them).
"""

from __future__ import annotations

import time
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded

from config.celery import app


@app.task
def runaway(seconds: float) -> None:
    """Sleep ``seconds``, swallowing every ``SoftTimeLimitExceeded`` (a task that will not stop by itself)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            time.sleep(left)
        except SoftTimeLimitExceeded:
            continue


@app.task
def mark(path: str) -> None:
    """Write ``path`` (the proof that the task ran)."""
    Path(path).write_text("ran\n", encoding="utf-8")
