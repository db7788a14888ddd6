"""gunicorn's own refusals, from a real ``entrypoint api`` under the committed configuration, as raw bytes (issue 20).

What gunicorn will not parse never reaches Django: an over-long request line,
too many or too large header fields, a request line or header that is not
HTTP/1.1. Each is answered by ``config.gunicorn_worker`` as a problem document
with gunicorn's status and a stable ``code``, and neither the answer nor the
log holds the request's bytes. The bounds are core/limits.py's: a request at
the bound is served, one byte more is refused.

One server for the module: the image's entry point and environment
(tests/deploy/conftest.py), one gevent worker, serving the test database
(its two communities); nothing it is sent here needs a write.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from core.limits import HEADER_FIELD_MAX_BYTES, HEADER_FIELDS_MAX, QUERY_PARAMETERS_MAX, REQUEST_LINE_MAX_BYTES
from tests.deploy.conftest import Process, Stack, image_environment
from tests.support import served
from tests.support.clients import ALPHA_HOST

# What a request might carry that no answer or log line may repeat.
MARKER = "MRN-0042-ADA-LOVELACE"
SERVED = "/health/live"


class Answer:
    """A response read off the socket: status, headers (lower-cased names) and the body."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = {name.lower(): value for name, value in response.getheaders()}
        self.body = response.read()

    def problem(self) -> dict[str, Any]:
        """The body as a problem document, after checking it is one."""
        assert self.headers["content-type"] == "application/problem+json"
        assert int(self.headers.get("content-length", len(self.body))) == len(self.body)  # Django's may be chunked
        document: dict[str, Any] = json.loads(self.body)
        assert document["status"] == self.status
        assert document["type"] == f"urn:compliance-gateway:problem:{document['code']}"
        assert {"title", "detail", "request_id"} <= set(document)
        assert document["request_id"] == self.headers["x-request-id"]
        return document


@pytest.fixture(scope="module")
def server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Process]]:
    """``entrypoint api`` on a free port, serving the test database; its port and its process (for the log)."""
    base = tmp_path_factory.mktemp("refusals")
    state_dir, logs, home = base / "state", base / "logs", base / "home"
    for directory in (state_dir, logs, home):
        directory.mkdir()
    environment = image_environment(
        home=home, state_dir=state_dir, database_url=served.suite_database_url(), rabbitmq_url=settings.RABBITMQ_URL
    )
    stack = Stack(env=environment, state_dir=state_dir, logs=logs, first_migrate=subprocess.CompletedProcess([], 0))
    process, port = stack.start_api("refusals")
    try:
        yield port, process
    finally:
        process.stop_group()


def send(port: int, raw: bytes) -> Answer:
    """Send ``raw`` on a new connection and read the one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(raw)
        response = http.client.HTTPResponse(connection)
        response.begin()
        return Answer(response)


def request(
    *, line: str = f"GET {SERVED} HTTP/1.1", host: str = "localhost", headers: list[str] | None = None
) -> bytes:
    """The request ``line`` (a GET of the live probe) with a Host and ``headers``, closing the connection."""
    head = [line, f"Host: {host}", "Connection: close", *(headers or [])]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")


def line_of(length: int) -> str:
    """A request line of exactly ``length`` bytes: a GET of the live probe with a query holding the marker."""
    fixed = f"GET {SERVED}?mrn={MARKER}&pad= HTTP/1.1"
    line = fixed.replace("&pad=", "&pad=" + "a" * (length - len(fixed)))
    assert len(line) == length
    return line


def header_of(length: int) -> str:
    """A header field line of exactly ``length`` bytes with its CRLF (gunicorn counts the CRLF)."""
    fixed = f"X-Filler: {MARKER}"
    return fixed + "a" * (length - len("\r\n") - len(fixed))


def assert_never_repeated(answer: Answer, process: Process) -> None:
    assert MARKER.encode() not in answer.body
    assert MARKER not in json.dumps(answer.headers)
    assert MARKER not in process.output()


def test_a_request_line_at_the_bound_is_served_and_one_byte_longer_is_414(server: tuple[int, Process]) -> None:
    port, process = server

    at_bound = send(port, request(line=line_of(REQUEST_LINE_MAX_BYTES)))
    refused = send(port, request(line=line_of(REQUEST_LINE_MAX_BYTES + 1)))

    assert at_bound.status == 200
    assert refused.status == 414
    assert refused.problem()["code"] == "request_line_too_long"
    assert refused.headers["connection"] == "close"
    assert refused.headers["cache-control"] == "no-store"
    assert_never_repeated(refused, process)


def test_a_request_line_far_over_the_bound_is_414_too(server: tuple[int, Process]) -> None:
    port, process = server

    refused = send(port, request(line=line_of(3 * REQUEST_LINE_MAX_BYTES)))

    assert (refused.status, refused.problem()["code"]) == (414, "request_line_too_long")
    assert_never_repeated(refused, process)


def test_a_header_line_at_the_bound_is_served_and_one_byte_longer_is_431(server: tuple[int, Process]) -> None:
    port, process = server

    at_bound = send(port, request(headers=[header_of(HEADER_FIELD_MAX_BYTES)]))
    refused = send(port, request(headers=[header_of(HEADER_FIELD_MAX_BYTES + 1)]))
    ten_kilobytes = send(port, request(headers=[header_of(10 * 1024)]))

    assert at_bound.status == 200
    for answer in (refused, ten_kilobytes):
        assert (answer.status, answer.problem()["code"]) == (431, "header_fields_too_large")
        assert_never_repeated(answer, process)


def test_as_many_header_fields_as_the_bound_are_served_and_one_more_is_431(server: tuple[int, Process]) -> None:
    port, process = server
    # Host and Connection are two of them.
    extra = [f"X-Field-{n}: {MARKER}" for n in range(HEADER_FIELDS_MAX - 2)]

    at_bound = send(port, request(headers=extra))
    refused = send(port, request(headers=[*extra, f"X-One-More: {MARKER}"]))

    assert at_bound.status == 200
    assert (refused.status, refused.problem()["code"]) == (431, "header_fields_too_large")
    assert_never_repeated(refused, process)


@pytest.mark.parametrize(
    "raw",
    [
        f"GARBAGE {MARKER}\r\n\r\n".encode(),
        f"GET /{MARKER} HTTP/9.9\r\nHost: localhost\r\n\r\n".encode(),
        f"GET /{MARKER}\x00 HTTP/1.1\r\nHost: localhost\r\n\r\n".encode("latin-1"),
        f"get /{MARKER} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode(),
        f"GET /{MARKER} HTTP/1.1\nHost: localhost\n\n".encode(),
        request(headers=[f"Bad Name: {MARKER}"]),
        request(headers=[f"X-Ok: {MARKER}", f" folded {MARKER}"]),
        request(headers=[f"X-Control: {MARKER}\x7f"]),
        request(headers=["Content-Length: 5", "Content-Length: 6"]),
        b"\x16\x03\x01\x02\x00\x01\xfc\x03\x03 " + MARKER.encode() + b"\r\n\r\n",  # binary, as a TLS hello
    ],
    ids=[
        "garbage-line",
        "version",
        "nul-in-target",
        "lower-case-method",
        "bare-lf",
        "header-name",
        "folding",
        "control-in-value",
        "two-lengths",
        "binary",
    ],
)
def test_a_request_that_is_not_http_is_400_without_its_bytes(server: tuple[int, Process], raw: bytes) -> None:
    port, process = server

    refused = send(port, raw)

    assert (refused.status, refused.problem()["code"]) == (400, "malformed_http_request")
    assert_never_repeated(refused, process)


def test_an_unknown_transfer_coding_is_501_and_an_unknown_expectation_417(server: tuple[int, Process]) -> None:
    port, process = server
    post = f"POST {SERVED} HTTP/1.1"

    coding = send(port, request(line=post, headers=[f"Transfer-Encoding: {MARKER}, chunked"]))
    expectation = send(port, request(line=post, headers=[f"Expect: {MARKER}", "Content-Length: 0"]))

    assert (coding.status, coding.problem()["code"]) == (501, "unsupported_transfer_coding")
    assert (expectation.status, expectation.problem()["code"]) == (417, "expectation_failed")
    assert_never_repeated(coding, process)
    assert_never_repeated(expectation, process)


def test_each_refusal_is_logged_by_its_code_and_request_id_and_the_worker_serves_on(
    server: tuple[int, Process],
) -> None:
    port, process = server

    refused = send(port, request(line=line_of(REQUEST_LINE_MAX_BYTES + 1))).problem()

    assert f"request_line_too_long, LimitRequestLine (request_id={refused['request_id']})" in process.output()
    assert send(port, request()).status == 200
    assert "<html>" not in process.output().lower()


def test_too_many_query_parameters_are_djangos_400_problem_through_gunicorn(server: tuple[int, Process]) -> None:
    port, _ = server
    query = "&".join(["a"] * (QUERY_PARAMETERS_MAX + 1))

    refused = send(port, request(line=f"POST /api/v1/auth/token?{query} HTTP/1.1", host=ALPHA_HOST))

    assert (refused.status, refused.problem()["code"]) == (400, "too_many_parameters")


def test_an_unsupported_method_on_a_probe_is_405_with_allow_through_gunicorn(server: tuple[int, Process]) -> None:
    port, _ = server

    refused = send(port, request(line=f"PROPFIND {SERVED} HTTP/1.1"))
    on_a_community = send(port, request(line="TRACE /api/v1/me HTTP/1.1", host=ALPHA_HOST))

    assert (refused.status, refused.problem()["code"]) == (405, "method_not_allowed")
    assert refused.headers["allow"] == "GET, HEAD"
    assert (on_a_community.status, on_a_community.problem()["code"]) == (405, "method_not_allowed")
