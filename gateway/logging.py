"""Log context and format: request id, community and user id on every record, plain or JSON lines.

:class:`RequestIdFilter` and :class:`LogContextFilter` add the context;
:class:`JsonFormatter` writes one JSON object a line (``LOG_FORMAT=json``, the
production default). The context is identifiers only: a request id, a
community's schema name, a user's id. Never a name, an email, a path's query or
a token; the message and the (withheld) exception text are the only free text.
"""

from __future__ import annotations

import logging
import traceback
from contextvars import ContextVar
from typing import Any

from django.db import connection
from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from security.audit.context import current_actor_id

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


class LogContextFilter(logging.Filter):
    """Attach ``community`` (the connection's schema, ``-`` on the platform) and ``user_id`` (``-`` if none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the attributes; never drops a record."""
        schema = getattr(connection, "schema_name", "") or "public"
        record.community = "-" if schema == "public" else schema
        record.user_id = current_actor_id() or "-"
        return True


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object a line: time, level, logger, message, request id, community, user id, exception.

    Only these keys are written: ``extra`` fields a caller passes are left out, so
    a careless ``logger.info(..., extra={"mrn": ...})`` cannot put PHI in a log line.
    """

    FIELDS = ("request_id", "community", "user_id")

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        """Write the fixed field set, ignoring extras."""
        log_data["timestamp"] = self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.getMessage()
        for name in self.FIELDS:
            log_data[name] = str(getattr(record, name, "-"))
        if record.exc_text:
            log_data["exception"] = record.exc_text
