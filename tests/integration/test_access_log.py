"""The access log of the service as ``make run`` serves it (gunicorn, serve.sh's command line) holds no query string.

A real gunicorn is started with the command ``scripts/serve.sh`` runs, against
the test database; an investigator searches by MRN (in the body, as the API
asks) and lists with a query string; the log is read back afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config import gunicorn as gunicorn_settings
from tests.support.served import Committed, Served, gunicorn_command, serving_a_searchable_participant

MRN = "MRN-LOGGED-0042"
ACCESS_LINE = re.compile(
    r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/1\.1" (?P<status>\d{3}) (?P<size>\d+|-) \d+ms request_id=(?P<id>\S+)'
)


@pytest.fixture
def served(django_db_setup: None, django_db_blocker: Any, tmp_path: Path) -> Iterator[tuple[Served, Committed]]:
    """gunicorn as serve.sh starts it, and a committed investigator and consented participant."""
    with django_db_blocker.unblock(), serving_a_searchable_participant(tmp_path / "gunicorn.log", MRN) as pair:
        yield pair


def test_serve_sh_runs_gunicorn_with_the_settings_module_that_sets_the_log_format() -> None:
    assert "--config python:config.gunicorn" in gunicorn_command()
    assert "%(r)s" not in gunicorn_settings.access_log_format
    assert "%(q)s" not in gunicorn_settings.access_log_format
    assert "%(f)s" not in gunicorn_settings.access_log_format
    assert "%(U)s" in gunicorn_settings.access_log_format


def test_an_mrn_search_and_a_filtered_list_leave_no_mrn_and_no_query_string_in_the_access_log(
    served: tuple[Served, Committed],
) -> None:
    server, committed = served
    headers = {"Authorization": f"Bearer {committed.token}", "Accept": "application/json"}

    searched, body = server.request(
        "POST",
        "/api/v1/participants/search/",
        host="alpha.localhost",
        headers={**headers, "Content-Type": "application/json"},
        body=json.dumps({"mrn": MRN}).encode(),
    )
    listed, _ = server.request("GET", "/api/v1/participants/?limit=5", host="alpha.localhost", headers=headers)
    refused, refusal = server.request(
        "GET", f"/api/v1/participants/?mrn={MRN}", host="alpha.localhost", headers=headers
    )

    assert searched == 200, body
    assert [row["id"] for row in json.loads(body)["results"]] == [committed.participant_id]
    assert (listed, refused) == (200, 400)
    assert MRN.encode() not in refusal
    log = server.stopped_log()
    assert MRN not in log
    assert "limit=5" not in log
    lines = [found.groupdict() for found in map(ACCESS_LINE.search, log.splitlines()) if found]
    api_lines = [line for line in lines if line["path"].startswith("/api/v1/participants/")]
    assert [(line["method"], line["path"], line["status"]) for line in api_lines] == [
        ("POST", "/api/v1/participants/search/", "200"),
        ("GET", "/api/v1/participants/", "200"),
        ("GET", "/api/v1/participants/", "400"),
    ]
    assert all(re.fullmatch(r"[0-9a-f]{32}", line["id"]) for line in api_lines), api_lines
