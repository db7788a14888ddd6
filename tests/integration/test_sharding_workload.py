"""A community's workload stays inside its own schema, as Citus schema-based sharding needs it to.

Each community's schema becomes a distributed schema on one node
(docs/operations/sharding.md). A statement that joins two communities' schemas,
or that a request of one community runs against another's, could not be served
by one node (and would be a breach of isolation anyway); a statement that joins
a community's tables with public tables needs those to be reference tables.
The workload here is what a community's members do over the API, in alpha and
in beta, plus the sequencer's chaining; every statement it sends through
Django is planned by PostgreSQL in the schema it ran in, and the relations of
the plan are checked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from security.audit.sequencer import audit_chain
from tenants.models import Community
from tests.factories import DEFAULT_PASSWORD
from tests.support.clients import ALPHA_HOST, BETA_HOST, MemberClient, client_on
from tests.support.research import ACTIVE_STUDY, ADA
from tests.support.sharding import (
    PUBLIC,
    REFERENCE_TABLES,
    Capture,
    Statement,
    documented_reference_tables,
    plannable,
    touched,
    violations,
)

COMMUNITIES = ("alpha", "beta")
HOSTS = {"alpha": ALPHA_HOST, "beta": BETA_HOST}
# Fewer statements than this in a community would mean the workload did not run there (a broken fixture, say).
AT_LEAST = 60


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.content
    return dict(response.json()) if response.content else {}


def _research(pi: APIClient, coordinator: APIClient, researcher: APIClient) -> None:
    """Studies, participants, consents and observations: writes, reads, lists, a search, an update."""
    study = _ok(
        pi.post(
            "/api/v1/studies/",
            ACTIVE_STUDY,
            format="json",
        ),
        201,
    )
    ada = _ok(coordinator.post("/api/v1/participants/", {"study": study["id"], **ADA}, format="json"), 201)
    consent = _ok(
        coordinator.post(
            f"/api/v1/participants/{ada['id']}/consents/",
            {"scopes": ["research_use", "contact"], "form_version": "v3.1", "signed_at": "2026-02-01T10:00:00Z"},
            format="json",
        ),
        201,
    )
    observation = {"participant": ada["id"], "code_system": "http://loinc.org", "code": "8867-4", "value": 72}
    created = _ok(coordinator.post("/api/v1/observations/", observation, format="json"), 201)
    read = pi.get(f"/api/v1/participants/{ada['id']}/")
    _ok(read)
    _ok(pi.get("/api/v1/participants/"))
    _ok(researcher.get("/api/v1/participants/"))
    _ok(pi.post("/api/v1/participants/search/", {"mrn": ADA["mrn"]}, format="json"))
    _ok(pi.get(f"/api/v1/observations/{created['id']}/"))
    _ok(pi.get("/api/v1/observations/", {"participant": ada["id"]}))
    _ok(
        coordinator.patch(
            f"/api/v1/participants/{ada['id']}/", {"city": "Oxford"}, format="json", HTTP_IF_MATCH=read.headers["ETag"]
        )
    )
    _ok(coordinator.get(f"/api/v1/participants/{ada['id']}/consents/"))
    _ok(coordinator.post(f"/api/v1/participants/{ada['id']}/consents/{consent['id']}/withdraw/", {}, format="json"))
    _ok(pi.get("/api/v1/studies/"))


def _workload(community: str, member_client: MemberClient, sign_in: Callable[..., dict[str, Any]]) -> None:
    on_beta = community == "beta"
    pi, pi_user = member_client("principal_investigator", on_beta=on_beta)
    coordinator = member_client("coordinator", on_beta=on_beta)[0]
    researcher = member_client("researcher", on_beta=on_beta)[0]
    officer = member_client("compliance_officer", second_factor=True, on_beta=on_beta)[0]
    _ok(client_on(HOSTS[community]).get("/api/v1/me"), 401)
    sign_in(HOSTS[community], pi_user, DEFAULT_PASSWORD)
    _ok(pi.get("/api/v1/me"))
    _research(pi, coordinator, researcher)
    with schema_context(community):
        audit_chain()  # what the worker does after each commit (tests never commit)
    _ok(officer.get("/api/v1/audit/events/"))


@pytest.fixture
def run_workload(
    alpha: Community,
    beta: Community,
    member_client: MemberClient,
    login: Callable[..., dict[str, Any]],
) -> Capture:
    """Alpha's and beta's workload, every statement captured with the schema it ran in."""
    capture = Capture()
    with connection.execute_wrapper(capture):
        for community in COMMUNITIES:
            _workload(community, member_client, login)
    return capture


def test_no_statement_of_a_community_s_workload_reaches_another_community_or_a_non_reference_public_table(
    run_workload: Capture,
) -> None:
    problems: dict[str, list[str]] = {}
    planned: dict[str, int] = dict.fromkeys(COMMUNITIES, 0)
    for statement in filter(plannable, run_workload.statements):
        found = touched(statement, COMMUNITIES)
        if statement.schema in planned and any(schema == statement.schema for schema, _ in found):
            planned[statement.schema] += 1
        for problem in violations(statement, found, COMMUNITIES):
            problems.setdefault(problem, []).append(statement.sql[:300])

    assert not problems, problems
    # Not vacuous: each community's own tables were read and written, many times.
    assert all(count >= AT_LEAST for count in planned.values()), planned


def test_the_checks_see_a_statement_that_joins_two_communities(run_workload: Capture) -> None:
    joined = Statement(
        schema="alpha",
        sql='SELECT count(*) FROM participants_participant JOIN "beta".participants_participant theirs USING (id)',
        params=None,
    )
    found = touched(joined, COMMUNITIES)

    assert {("alpha", "participants_participant"), ("beta", "participants_participant")} <= found
    assert len(violations(joined, found, COMMUNITIES)) == 2


def test_the_checks_see_a_join_with_a_public_table_that_is_not_a_reference_table(run_workload: Capture) -> None:
    joined = Statement(
        schema="beta",
        sql="SELECT count(*) FROM studies_study, security_membership WHERE security_membership.role = 'x'",
        params=None,
    )
    found = touched(joined, COMMUNITIES)

    assert (PUBLIC, "security_membership") in found
    assert violations(joined, found, COMMUNITIES) == [
        "joins community tables with public tables that are not reference tables: ['security_membership']"
    ]


def test_the_reference_tables_the_checks_allow_are_those_the_operator_makes() -> None:
    assert documented_reference_tables() == set(REFERENCE_TABLES)
