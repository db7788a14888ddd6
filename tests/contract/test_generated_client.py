"""A client generated from the served schema runs the research walkthrough against the served API (issue 20).

openapi-python-client turns the schema alpha's host serves at ``/api/schema/`` into a package in a temporary
directory, the test imports it, and the demo walkthrough (scripts/demo.sh) runs through it: the investigator and
the coordinator sign in, the investigator creates a study, the coordinator enrols a participant, records her
consent and two observations, the investigator reads the record (stating the purpose of use) and the
observations back, one by one and as a list, the coordinator corrects the record with the ETag read
(``If-Match``), and the investigator's token is refused on the other community's host. Every request goes through
a generated function, its body built as the generated request model (tests/support/generated_client.py); the
server is ``entrypoint api`` on a fresh database seeded with the demo (tests/contract/conftest.py). Where the
client cannot express or read what the server does, the gap is recorded and the walkthrough goes on, so that the
failure lists every gap at once.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import Stack
from tests.support.demo_members import HOSTS, demo_password, fetch
from tests.support.generated_client import (
    Answer,
    GeneratedApi,
    Walkthrough,
    documented_statuses,
    generate,
    load,
)

PACKAGE = "gateway_client"
RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def api_port(stack: Stack) -> int:
    """``entrypoint api`` with the demo's configuration as the image runs it."""
    _, port = stack.start_api("client")
    return port


@pytest.fixture(scope="module")
def schema(api_port: int, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The schema alpha's host serves, saved as served."""
    status, text = fetch(api_port, "/api/schema/", host=HOSTS["alpha"])
    assert status == 200, text
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def generated(schema: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, GeneratedApi]]:
    """The generator's output and the package it wrote, imported (and forgotten again at the end)."""
    package = tmp_path_factory.mktemp("client") / PACKAGE
    result = generate(schema, package)
    assert result.returncode == 0, result.stdout + result.stderr
    try:
        yield result.stdout + result.stderr, GeneratedApi(load(package))
    finally:
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def value(answer: Answer, name: str) -> Any:
    """A field of the answer, from the generated model, or from the body where the model could not read it."""
    if answer.parsed is not None:
        return getattr(answer.parsed, name)
    return (answer.body or {}).get(name)


def test_the_generator_reads_the_served_schema_without_a_warning(generated: tuple[str, GeneratedApi]) -> None:
    output, _ = generated

    assert "Warning" not in output, output


def test_the_generated_client_runs_the_research_walkthrough(
    api_port: int, stack: Stack, schema: Path, generated: tuple[str, GeneratedApi]
) -> None:
    _, api = generated
    documented = documented_statuses(yaml.safe_load(schema.read_text(encoding="utf-8")))
    walk = Walkthrough(api=api, documented=documented, base_url=f"http://127.0.0.1:{api_port}")
    host = HOSTS["alpha"]
    password = demo_password(stack.state_dir)

    # The investigator and the coordinator sign in (password alone: nothing here is an elevated action).
    tokens = {}
    for role in ("principal_investigator", "coordinator"):
        credentials = {"email": f"{role}@alpha.example", "password": password}
        signed_in = walk.call(walk.client(host=host), "POST", "/api/v1/auth/token", expect=200, body=credentials)
        tokens[role] = str(value(signed_in, "access"))
    investigator = walk.client(host=host, token=tokens["principal_investigator"])
    coordinator = walk.client(host=host, token=tokens["coordinator"])
    me = walk.call(investigator, "GET", "/api/v1/me", expect=200)
    assert value(me, "roles") == ["principal_investigator"]

    # The investigator creates an active study.
    study = walk.call(
        investigator,
        "POST",
        "/api/v1/studies/",
        expect=201,
        body={
            "title": "Sleep and memory",
            "protocol_number": f"SLP-{RUN}",
            "irb_approval_number": "IRB-7",
            "irb_approval_date": "2026-01-15",
            "status": "active",
        },
    )
    study_id = uuid.UUID(str(value(study, "id")))

    # The coordinator enrols a participant, records her consent to research use and two observations.
    participant = walk.call(
        coordinator,
        "POST",
        "/api/v1/participants/",
        expect=201,
        body={
            "study": str(study_id),
            "given_name": "Ada",
            "family_name": "Lovelace",
            "date_of_birth": "1950-12-10",
            "mrn": f"MRN-{RUN}",
            "postal_code": "10001",
            "state": "NY",
        },
    )
    participant_id = uuid.UUID(str(value(participant, "id")))
    consent = walk.call(
        coordinator,
        "POST",
        "/api/v1/participants/{id}/consents/",
        expect=201,
        id=participant_id,
        body={"scopes": ["research_use"], "form_version": "v3", "signed_at": "2026-02-01T10:00:00Z"},
    )
    assert [str(scope) for scope in value(consent, "scopes") or []] in (["research_use"], ["ScopesEnum.RESEARCH_USE"])
    observation_ids = []
    for heart_rate in (72, 68):
        observation = walk.call(
            coordinator,
            "POST",
            "/api/v1/observations/",
            expect=201,
            body={
                "participant": str(participant_id),
                "code_system": "http://loinc.org",
                "code": "8867-4",
                "display": "Heart rate",
                "value": heart_rate,
                "unit": "/min",
                "effective_date": "2026-03-02",
            },
        )
        observation_ids.append(uuid.UUID(str(value(observation, "id"))))

    # The investigator reads the record, stating the purpose of use: the PHI, since the consent covers it.
    record = walk.call(
        investigator,
        "GET",
        "/api/v1/participants/{id}/",
        expect=200,
        id=participant_id,
        headers={"X-Purpose-Of-Use": "research_use"},
    )
    assert value(record, "given_name") == "Ada"
    etag = record.headers.get("etag", "")
    assert etag, "the read carries the record's ETag"

    # ... and the observations, one by one and as the participant's list.
    for observation_id in observation_ids:
        read = walk.call(investigator, "GET", "/api/v1/observations/{id}/", expect=200, id=observation_id)
        assert str(value(read, "participant")) == str(participant_id)
    listed = walk.call(investigator, "GET", "/api/v1/observations/", expect=200, participant=participant_id)
    page = listed.parsed if isinstance(listed.parsed, list) else (listed.body or {}).get("results", [])
    values = sorted(float(item.value if hasattr(item, "value") else item["value"]) for item in page)
    assert values == [68.0, 72.0]

    # The coordinator corrects the record, naming the version read.
    walk.call(
        coordinator,
        "PATCH",
        "/api/v1/participants/{id}/",
        expect=200,
        id=participant_id,
        headers={"If-Match": etag},
        body={"city": "New York"},
    )

    # The investigator's token is refused on the other community's host.
    outsider = walk.client(host=HOSTS["beta"], token=tokens["principal_investigator"])
    walk.call(outsider, "GET", "/api/v1/participants/{id}/", expect=401, id=participant_id)

    if walk.gaps:
        pytest.fail("the generated client could not express or read:\n- " + "\n- ".join(walk.gaps), pytrace=False)
