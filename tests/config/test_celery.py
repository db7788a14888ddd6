"""The Celery app: workers keep the service's logging, and beat runs the break-glass notice sweep."""

from __future__ import annotations

import logging
import sys

from django.conf import settings

from config.celery import app
from gateway.logging import RequestIdFilter, WithholdExceptionMessageFilter
from tests.support.workers import worker_logging

PHI = "Ada Lovelace, born 1815-12-10"


def test_workers_do_not_hijack_the_root_logger() -> None:
    assert settings.CELERY_WORKER_HIJACK_ROOT_LOGGER is False
    assert app.conf.worker_hijack_root_logger is False


def test_after_a_workers_logging_set_up_the_root_handlers_still_withhold_exception_messages() -> None:
    with worker_logging() as handlers:
        kinds = [{type(entry) for entry in handler.filters} for handler in handlers]
        try:
            raise KeyError(PHI)  # by name: the frames, which are kept, show this line
        except KeyError:
            record = logging.LogRecord("celery.app.trace", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
        assert all(handler.filter(record) for handler in handlers)

    assert kinds
    assert all({WithholdExceptionMessageFilter, RequestIdFilter} <= found for found in kinds)
    text = logging.Formatter().format(record)
    assert "Ada Lovelace" not in text
    assert "KeyError (message withheld)" in text


def test_beat_sweeps_owed_break_glass_notices() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["break-glass-notify"]

    assert entry["task"] == "security.breakglass.tasks.notify_sweep"
    assert entry["schedule"] == float(settings.BREAK_GLASS_NOTIFY_SWEEP_SECONDS)
    app.loader.import_default_modules()  # what a worker does at start: the apps' tasks modules
    assert entry["task"] in app.tasks


def test_tasks_that_walk_a_whole_community_have_the_long_limits_and_the_rest_the_short_ones() -> None:
    import operations.tasks  # noqa: F401, PLC0415
    import security.audit.tasks  # noqa: F401, PLC0415 - registers the tasks the app serves
    import services.exports.tasks  # noqa: F401, PLC0415
    import vault.tasks  # noqa: F401, PLC0415

    app.loader.import_default_modules()
    long_ones = (
        "vault.tasks.reencrypt_community_task",
        "services.exports.tasks.deidentified_export",
        "operations.tasks.backup_base",
    )
    for name in long_ones:
        task = app.tasks[name]
        assert (task.time_limit, task.soft_time_limit) == (
            settings.LONG_TASK_TIME_LIMIT,
            settings.LONG_TASK_TIME_LIMIT - 60,
        )
    # The others keep the app-wide limits (no annotation): a runaway chaining task is stopped in minutes.
    others = [
        name for name in app.tasks if name.startswith(("security.", "vault.", "operations.")) and name not in long_ones
    ]
    assert others
    for name in others:
        task = app.tasks[name]
        assert (task.time_limit, task.soft_time_limit) == (300, 240), name
