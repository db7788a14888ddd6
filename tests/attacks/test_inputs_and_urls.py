"""Attacks through what a request carries: PHI put in a URL, ids probed for existence, a hostile JSON body.

Each test is what an attacker (or a careless client) tries, and each failed
on the code before its fix.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from tests.support.audit import chained_events
from tests.support.clients import MemberClient
from tests.support.served import Committed, Served, serving_a_searchable_participant

MRN = "MRN-ATTACK-4711"
PER_REQUEST_IDS = re.compile(rb',?\s*"(?:request_id|decision_id)":\s*(?:"[^"]*"|null)')


@pytest.fixture
def served_search(django_db_setup: None, django_db_blocker: Any, tmp_path: Path) -> Iterator[tuple[Served, Committed]]:
    """gunicorn as serve.sh starts it, and a PI who may search for a committed participant by MRN."""
    with django_db_blocker.unblock(), serving_a_searchable_participant(tmp_path / "gunicorn.log", MRN) as pair:
        yield pair


def test_an_mrn_search_leaves_the_mrn_in_the_access_log(served_search: tuple[Served, Committed]) -> None:
    """Security review finding 4: an exact-MRN search wrote the MRN, in clear, to the access log.

    The attacker reads the access log (kept longer and read more widely than the
    encrypted column) after investigators searched by MRN, the old way in the
    query string and the new way in a body.
    """
    served, committed = served_search
    headers = {"Authorization": f"Bearer {committed.token}", "Accept": "application/json"}

    served.request("GET", f"/api/v1/participants/?mrn={MRN}", host="alpha.localhost", headers=headers)
    status, body = served.request(
        "POST",
        "/api/v1/participants/search/",
        host="alpha.localhost",
        headers={**headers, "Content-Type": "application/json"},
        body=json.dumps({"mrn": MRN}).encode(),
    )

    log = served.stopped_log()
    assert MRN not in log
    assert "mrn=" not in log
    assert [line for line in log.splitlines() if "/api/v1/" in line and "?" in line] == []
    assert status == 200, body
    assert [row["id"] for row in json.loads(body)["results"]] == [committed.participant_id]


def test_probing_ids_tells_existing_from_missing_records(ada: dict[str, Any], member_client: MemberClient) -> None:
    """Security review finding 10: a miss and a hidden denial answered with different 404 documents.

    The attacker is a member without ``participant.read`` (an owner) who asks
    for an id they saw somewhere and for a random one, and compares the answers.
    """
    owner, _ = member_client("owner")
    existing, random = ada["id"], str(uuid.uuid4())

    answers = [owner.get(f"/api/v1/participants/{pk}/") for pk in (existing, random)]

    assert [answer.status_code for answer in answers] == [404, 404]
    bodies = [
        PER_REQUEST_IDS.sub(b"", answer.content.replace(pk.encode(), b"<id>"))
        for answer, pk in zip(answers, (existing, random), strict=True)
    ]
    assert bodies[0] == bodies[1]


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000],
    ids=["arrays", "objects"],
)
def test_deeply_nested_json_breaks_the_parser(
    body: bytes, pi: APIClient, client_for: Any, django_db_setup: None
) -> None:
    """Security review finding 11: deeply nested JSON raised RecursionError, a 500 that was never audited.

    The attacker sends a body nested far deeper than any real request, to sign-in
    (no account needed) and to a research route.
    """
    signing_in = client_for("alpha.localhost").post(
        "/api/v1/auth/token", body, content_type="application/json", HTTP_USER_AGENT="nested-json"
    )
    creating = pi.post("/api/v1/studies/", body, content_type="application/json")

    for answer in (signing_in, creating):
        assert answer.status_code == 400
        assert answer["Content-Type"] == "application/problem+json"
        assert answer.json()["code"] == "malformed_request"
    with schema_context("alpha"):
        recorded = {event.request_id: event for event in chained_events()}
    for answer, action in ((signing_in, "auth.login"), (creating, "study.create")):
        event = recorded[answer["X-Request-ID"]]
        assert (event.action, event.http_status) == (action, 400)
