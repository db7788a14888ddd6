"""Log context: the current request id, added to every record by :class:`RequestIdFilter`."""

from __future__ import annotations

import logging
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Attach ``request_id`` to each log record so that log lines can be correlated."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the attribute; never drops a record."""
        record.request_id = request_id_var.get() or "-"
        return True
