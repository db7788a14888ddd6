"""Logs carry where an error happened, never its message (which may hold PHI or secrets)."""

from __future__ import annotations

import logging
import sys

from gateway.logging import RequestIdFilter, WithholdExceptionMessageFilter, request_id_var


def record_of(error: Exception) -> logging.LogRecord:
    try:
        raise error
    except type(error):
        return logging.LogRecord(
            "django.request", logging.ERROR, __file__, 1, "Internal Server Error", (), sys.exc_info()
        )


def test_exception_messages_are_withheld_and_the_frames_kept() -> None:
    record = record_of(ValueError("MRN 12345 belongs to Jane Doe"))

    assert WithholdExceptionMessageFilter().filter(record)

    text = logging.Formatter().format(record)
    assert "Jane Doe" not in text
    assert "ValueError (message withheld)" in text
    assert "test_logging.py" in text


def test_records_carry_the_request_id() -> None:
    token = request_id_var.set("abc123")
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)

    assert getattr(record, "request_id", None) == "abc123"
