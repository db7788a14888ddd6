"""Celery workers in tests: their logging set-up, run for real and then undone."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from celery.app.log import Logging

from config.celery import app


@contextmanager
def worker_logging() -> Iterator[list[logging.Handler]]:
    """Set logging up as a worker does at start (``setup_logging_subsystem``); yield the root's handlers; undo it.

    pytest's own capture handlers are left out of what is yielded: they are the test's, not the worker's.
    """
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_setup = Logging._setup  # type: ignore[attr-defined]  # a class flag celery-stubs do not declare
    Logging._setup = False  # type: ignore[attr-defined]  # set up again, as a fresh worker would
    try:
        app.log.setup_logging_subsystem(loglevel="INFO")
        yield [handler for handler in root.handlers if not type(handler).__name__.startswith("LogCapture")]
    finally:
        Logging._setup = saved_setup  # type: ignore[attr-defined]
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
