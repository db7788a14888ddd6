"""JSON log lines: request id, community and user id on each, a fixed field set, no exception message."""

from __future__ import annotations

import json
import logging
import sys

from django_tenants.utils import schema_context

from gateway.logging import (
    JsonFormatter,
    LogContextFilter,
    RequestIdFilter,
    WithholdExceptionMessageFilter,
    request_id_var,
)
from security.audit.context import annotate, request_audit
from tenants.models import Community
from tests.config.test_production_settings import COMPLETE, start_production

SECRET_ERROR = ValueError("MRN 12345 belongs to Jane Doe")
FILTERS = (RequestIdFilter(), LogContextFilter(), WithholdExceptionMessageFilter())


def json_line(record: logging.LogRecord) -> dict[str, object]:
    for log_filter in FILTERS:
        assert log_filter.filter(record)
    return dict(json.loads(JsonFormatter().format(record)))


def record(message: str = "participant read", **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("services.participants", logging.INFO, __file__, 1, message, (), None)
    made.__dict__.update(extra)
    return made


def test_a_line_names_the_request_the_community_and_the_user(alpha: Community, beta: Community) -> None:
    token = request_id_var.set("req-1")
    try:
        with request_audit(), schema_context("alpha"):
            annotate(actor_id="42")
            in_alpha = json_line(record())
        with request_audit(), schema_context("beta"):
            in_beta = json_line(record())
    finally:
        request_id_var.reset(token)

    assert {key: in_alpha[key] for key in ("request_id", "community", "user_id", "message", "level")} == {
        "request_id": "req-1",
        "community": "alpha",
        "user_id": "42",
        "message": "participant read",
        "level": "INFO",
    }
    assert (in_beta["community"], in_beta["user_id"]) == ("beta", "-")


def test_outside_a_request_and_a_community_the_context_is_dashes(db: None) -> None:
    line = json_line(record())

    assert (line["request_id"], line["community"], line["user_id"]) == ("-", "-", "-")


def test_extra_fields_never_reach_the_line() -> None:
    line = json_line(record(mrn="MRN-000123", email="ada@example.org"))

    assert set(line) == {"timestamp", "level", "logger", "message", "request_id", "community", "user_id"}
    assert "MRN-000123" not in json.dumps(line)


def test_an_exception_keeps_its_frames_and_loses_its_message() -> None:
    try:
        raise SECRET_ERROR  # a variable: the frame's source line must not hold the message itself
    except ValueError:
        failed = logging.LogRecord(
            "django.request", logging.ERROR, __file__, 1, "Internal Server Error", (), sys.exc_info()
        )

    line = json_line(failed)

    assert "Jane Doe" not in json.dumps(line)
    assert str(line["exception"]).startswith("ValueError (message withheld)")


def test_an_exception_without_the_withholding_filter_is_left_out() -> None:
    try:
        raise SECRET_ERROR  # a variable: the frame's source line must not hold the message itself
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())

    assert "Jane Doe" not in JsonFormatter().format(failed)


def test_production_logs_json_lines_and_plain_when_told() -> None:
    program = "import django, logging; django.setup(); logging.getLogger('probe').warning('hello')"

    json_run = start_production(COMPLETE, program)
    plain_run = start_production({**COMPLETE, "LOG_FORMAT": "plain"}, program)

    assert json_run.returncode == 0, json_run.stderr
    line = json.loads(json_run.stderr.strip().splitlines()[-1])
    assert (line["logger"], line["message"], line["request_id"]) == ("probe", "hello", "-")
    assert plain_run.stderr.strip().splitlines()[-1].endswith("WARNING probe [- - -] hello")
