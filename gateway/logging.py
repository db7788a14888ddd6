"""Log context: the current request id, added to every record by :class:`RequestIdFilter`."""

from __future__ import annotations

import logging
import traceback
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class WithholdExceptionMessageFilter(logging.Filter):
    """Replace a record's exception with its type and frames: messages may carry PHI or secrets.

    Django logs unhandled errors outside DRF with the exception attached; this
    keeps the stack (where it happened) and drops the message (what it was about).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the exception part of the record; never drops a record."""
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            frames = "".join(traceback.format_tb(error.__traceback__))
            record.exc_text = f"{type(error).__name__} (message withheld)\nTraceback:\n{frames}"
            record.exc_info = None
        return True


class RequestIdFilter(logging.Filter):
    """Attach ``request_id`` to each log record so that log lines can be correlated."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the attribute; never drops a record."""
        record.request_id = request_id_var.get() or "-"
        return True
