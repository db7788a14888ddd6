"""The served OpenAPI schema holds under schemathesis, for every role that may call each operation, on both hosts.

The server is ``entrypoint api`` (gunicorn with the committed gevent configuration) on a fresh database seeded
with the demo communities (tests/contract/conftest.py); the schema is the one each host serves at
``/api/schema/``. Who fuzzes an operation is the policy's answer, not a list kept here: each operation is
resolved to its view and the view's declared action, and each role the policy matrix grants that action to gets
the operation in its run (the coordinator only for its writes and the lists that give them ids). A run is pinned
to a token the server issued to that member just before it (tests/support/demo_members.py: a fresh sign-in, a
recovery code as second factor for the elevated roles); its peers, for ``object_level_authorization``, are a
researcher of the same community and the other community's investigator. A separate run sends the other
community's token to every operation, and no guarded operation may admit it; another sends each community's
auditor's token to every operation, and none that the policy does not grant the auditor may admit it (this is
where the policy's 403s are met). Before the runs, a study, a participant with a consent and an observation are
made through the API in each community, and their ids are offered to the runs' ``study`` and ``participant``
fields. Signing in, refreshing and signing out are fuzzed last, with a session of their own: the fuzzed sign-ins
lock the client address out of signing in, as they should, and the fuzzed sign-outs end the session they carry.

Every check schemathesis 4 has runs (tests/support/fuzzing.py), with a fixed seed (``FUZZ_SEED``) and
``FUZZ_EXAMPLES`` examples per operation and phase (8 here, sized for CI; ``make fuzz`` runs a longer one), and
any failure fails the test with the unique failures grouped by cause. One setting is the fuzz server's own: the
per-address and per-user rate limits are raised, since every request comes from 127.0.0.1 and a handful of
users, and with the limits in force nearly every answer after the first few hundred would be a 429 (the limiter
has tests of its own, tests/core/test_ratelimit.py). What the runs cannot cover is in docs/development.md
("The API fuzzer").
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.urls import resolve
from schemathesis.checks import CHECKS, load_all_checks

from policy.matrix import policy_matrix
from security.roles import Role
from tests.deploy.conftest import Stack
from tests.support.demo_members import HOSTS, DemoMember, call, demo_members, demo_password, fetch
from tests.support.fuzzing import (
    ALL_PHASES,
    Budget,
    FuzzRun,
    Identity,
    RunResult,
    failure_report,
    fuzz,
    timings,
)

SEED = 20260520
CI_EXAMPLES = 8
RAISED_LIMIT = str(10**9)
# The operations that start and end sessions: fuzzed last, with a session of their own (see the module docstring).
SESSION_ROUTES = frozenset({"auth-token", "auth-refresh", "auth-logout"})
# Who fuzzes, in order, and whether the role takes only its writes and the lists that give them ids (the
# coordinator's reads of one record are the investigator's too).
ROLE_RUNS = (
    (Role.PRINCIPAL_INVESTIGATOR, False),
    (Role.COORDINATOR, True),
    (Role.COMPLIANCE_OFFICER, False),
    (Role.RESEARCHER, False),
)
# In CI, each role's stateful sequences run in one community (make fuzz: in both); see phases_of.
STATEFUL_COMMUNITY: dict[str, str] = {
    Role.PRINCIPAL_INVESTIGATOR: "alpha",
    Role.COORDINATOR: "alpha",
    Role.COMPLIANCE_OFFICER: "beta",
    Role.RESEARCHER: "beta",
}
# The cross-community runs send a token that is refused before anything else: a few examples per operation do.
CROSS_EXAMPLES = 2
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
UUID = "0b1f5f7e-6c4a-4d3b-9a8e-2f1c0d9e8b7a"


@dataclass(frozen=True)
class Operation:
    """One operation of the served schema and what the policy says about it."""

    label: str
    method: str
    route: str | None
    action: str | None

    @property
    def guarded(self) -> bool:
        """Whether a policy decision guards it (the public routes of policy/routes.py do without one)."""
        return self.action is not None

    @property
    def reads_one(self) -> bool:
        """A read of one thing, or of a path under one (``GET /studies/{id}/``): not a write, nor a list of ids."""
        return self.method in SAFE_METHODS and "{" in self.label

    @property
    def for_every_member(self) -> bool:
        """The caller's own session and second factor (``self.*``), or no policy at all."""
        return self.action is None or self.action.startswith("self.")


def schema_operations(schema: dict[str, Any]) -> list[Operation]:
    """Every operation of ``schema``, resolved to its view's declared policy action."""
    operations = []
    for path, item in schema["paths"].items():
        match = resolve(re.sub(r"\{[^}]+\}", UUID, path))
        view = getattr(match.func, "view_class", None) or getattr(match.func, "cls", None)
        declared = getattr(view, "declared_action", None)
        for method in item:
            if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
                action = declared(method.upper()) if declared is not None else None
                operations.append(Operation(f"{method.upper()} {path}", method.upper(), match.url_name, action))
    return operations


def role_operations(operations: list[Operation], role: str, *, writes_and_lists: bool) -> tuple[str, ...]:
    """The operations ``role`` may call and fuzzes (the investigator's run also takes every member's own ones)."""
    granted = policy_matrix().roles[role]
    chosen = []
    for operation in operations:
        if operation.route in SESSION_ROUTES or (writes_and_lists and operation.reads_one):
            continue
        if operation.for_every_member:
            if role == Role.PRINCIPAL_INVESTIGATOR:
                chosen.append(operation.label)
        elif operation.action in granted:
            chosen.append(operation.label)
    return tuple(chosen)


def other(community: str) -> str:
    """The other demo community."""
    return next(name for name in HOSTS if name != community)


@dataclass(frozen=True)
class Served:
    """The fuzz server, the schema each host serves (saved for the runs) and how the runs are held."""

    port: int
    schemas: dict[str, tuple[Path, list[Operation]]]
    budget: Budget
    reports: Path
    every_check: frozenset[str]

    @property
    def base_url(self) -> str:
        """Where the runs send their requests (the host goes in the Host header)."""
        return f"http://127.0.0.1:{self.port}"


def report_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the runs write: ``FUZZ_REPORT_DIR`` when set (``make fuzz`` keeps them), else a temporary one."""
    chosen = os.environ.get("FUZZ_REPORT_DIR")
    if not chosen:
        return tmp_path_factory.mktemp("fuzz")
    Path(chosen).mkdir(parents=True, exist_ok=True)
    return Path(chosen).resolve()


@pytest.fixture(scope="module")
def served(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Served:
    """``entrypoint api`` for the fuzzer (the rate limits raised, see above) and what the runs need of it."""
    _, port = stack.start_api(
        "fuzz",
        # Two workers: the two communities' runs go at once (a run waits on the database more than it computes).
        GUNICORN_WORKERS="2",
        RATE_LIMIT_PER_IP=RAISED_LIMIT,
        RATE_LIMIT_IP_BURST=RAISED_LIMIT,
        RATE_LIMIT_PER_USER=RAISED_LIMIT,
        RATE_LIMIT_USER_BURST=RAISED_LIMIT,
    )
    reports = report_directory(tmp_path_factory)
    schemas = {}
    for community, host in HOSTS.items():
        status, text = fetch(port, "/api/schema/", host=host)
        assert status == 200, text
        path = reports / f"schema-{community}.yaml"
        path.write_text(text, encoding="utf-8")
        schemas[community] = (path, schema_operations(yaml.safe_load(text)))
    load_all_checks()
    return Served(
        port=port,
        schemas=schemas,
        budget=Budget.from_environment(os.environ, seed=SEED, max_examples=CI_EXAMPLES),
        reports=reports,
        # Every check schemathesis has: the registered ones, and max_response_time (on through its limit).
        every_check=frozenset({*CHECKS.get_all_names(), "max_response_time"}),
    )


@pytest.fixture(scope="module")
def members(stack: Stack, served: Served) -> dict[str, DemoMember]:
    """Every demo member, second factors enrolled through the API."""
    return demo_members(served.port, demo_password(stack.state_dir))


def long_run() -> bool:
    """Whether this is ``make fuzz``'s long run (``FUZZ_LONG=1``): every phase for every role, on both hosts."""
    return os.environ.get("FUZZ_LONG") == "1"


def coverage_plan(schemas: dict[str, tuple[Path, list[Operation]]]) -> dict[tuple[str, str], frozenset[str]]:
    """Per (community, role) run, the operations whose coverage phase it runs.

    The coverage phase's cases are drawn from the schema alone, so a second role, or the other community, would
    send the same requests again: in CI each operation gets it once, alternately on alpha and on beta (sorted by
    label, so the two lanes share the work), in the first run of that community that fuzzes it. ``make fuzz``
    runs it in every run.
    """
    communities = list(schemas)
    labels = sorted({operation.label for _, operations in schemas.values() for operation in operations})
    plan: dict[tuple[str, str], set[str]] = {(community, role): set() for community in schemas for role, _ in ROLE_RUNS}
    for index, label in enumerate(labels):
        community = communities[index % len(communities)]
        for role, writes_and_lists in ROLE_RUNS:
            if label in role_operations(schemas[community][1], role, writes_and_lists=writes_and_lists):
                plan[community, role].add(label)
                break
    return {run: frozenset(chosen) for run, chosen in plan.items()}


def phases_of(community: str, role: str) -> tuple[str, ...]:
    """The phases of a role's run: fuzzing always, stateful sequences for each role in one community (in CI)."""
    if long_run() or STATEFUL_COMMUNITY[role] == community:
        return ALL_PHASES
    return ("examples", "coverage", "fuzzing")


def known_records(served: Served, members: dict[str, DemoMember], community: str) -> dict[str, tuple[str, ...]]:
    """Records made through the API before the runs, so that the fuzzer has ids that exist to send.

    A study (the investigator's), a participant enrolled in it with a consent to research use and an observation
    (the coordinator's): the ids go to the runs as values of the ``study`` and ``participant`` fields and filters,
    drawn half the time. Paths' ids come from the runs' own answers (stateful links and the resource pool).
    """
    host = HOSTS[community]
    investigator = members[f"{community}-principal_investigator"].sign_in()
    coordinator = members[f"{community}-coordinator"].sign_in()
    study = {
        "title": "Fuzzing baseline",
        "protocol_number": f"FUZZ-{community}",
        "irb_approval_number": "IRB-1",
        "irb_approval_date": "2026-01-15",
        "status": "active",
    }
    status, made = call(served.port, "POST", "/api/v1/studies/", host=host, token=investigator, body=study)
    assert status == 201, made
    participant = {"study": made["id"], "given_name": "Fuzz", "family_name": "Baseline", "date_of_birth": "1970-01-01"}
    status, enrolled = call(
        served.port, "POST", "/api/v1/participants/", host=host, token=coordinator, body=participant
    )
    assert status == 201, enrolled
    consent = {"scopes": ["research_use"], "form_version": "v1", "signed_at": "2026-02-01T10:00:00Z"}
    path = f"/api/v1/participants/{enrolled['id']}/consents/"
    status, answer = call(served.port, "POST", path, host=host, token=coordinator, body=consent)
    assert status == 201, answer
    observation = {
        "participant": enrolled["id"],
        "code_system": "http://loinc.org",
        "code": "8867-4",
        "value": 70,
        "unit": "/min",
        "effective_date": "2026-03-02",
    }
    status, answer = call(served.port, "POST", "/api/v1/observations/", host=host, token=coordinator, body=observation)
    assert status == 201, answer
    studies, participants = (str(made["id"]),), (str(enrolled["id"]),)
    return {
        "body.study": studies,
        "query.study": studies,
        "body.participant": participants,
        "query.participant": participants,
    }


def community_runs(
    served: Served,
    community: str,
    members: dict[str, DemoMember],
    operations: list[Operation],
    coverage: dict[tuple[str, str], frozenset[str]],
) -> Iterator[FuzzRun]:
    """The role runs of one community, each pinned to a fresh token (signed in when the run is about to start)."""
    known = known_records(served, members, community)
    peers = (
        Identity(f"{community}-researcher (peer)", members[f"{community}-researcher"].sign_in()),
        Identity(
            f"{other(community)}-principal_investigator (peer)",
            members[f"{other(community)}-principal_investigator"].sign_in(),
        ),
    )
    for role, writes_and_lists in ROLE_RUNS:
        member = members[f"{community}-{role}"]
        chosen = role_operations(operations, role, writes_and_lists=writes_and_lists)
        covered_here = set(chosen) if long_run() else coverage[community, role]
        yield FuzzRun(
            name=member.name,
            host=member.host,
            identity=Identity(member.name, member.sign_in()),
            operations=chosen,
            phases=phases_of(community, role),
            peers=peers,
            without_coverage=tuple(sorted(set(chosen) - covered_here)),
            known=known,
        )


def in_lanes(runs: dict[str, Iterator[FuzzRun]], *, served: Served) -> dict[str, list[RunResult]]:
    """Each community's runs in turn, the two communities at once (their data live in schemas of their own)."""

    def lane(community: str) -> list[RunResult]:
        results = []
        for run in runs[community]:
            directory = served.reports / run.name
            schema = served.schemas[community][0]
            results.append(
                fuzz(run, schema=schema, base_url=served.base_url, budget=served.budget, directory=directory)
            )
        return results

    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        lanes = dict(zip(runs, pool.map(lane, runs), strict=True))
    print("\n".join(timings(result for found in lanes.values() for result in found)))
    return lanes


def flat(lanes: dict[str, list[RunResult]]) -> list[RunResult]:
    """Every lane's results, alpha's first."""
    return [result for found in lanes.values() for result in found]


def assert_clean(results: list[RunResult], served: Served) -> None:
    """Every check ran in every run, and no run found anything."""
    for result in results:
        missing = served.every_check - result.checks
        assert not missing, f"{result.run.name} did not run {sorted(missing)}"
    if not all(result.clean for result in results):
        # The grouped report is the message; schemathesis's own output and reports are where it says.
        pytest.fail(failure_report(results, directory=served.reports), pytrace=False)


def assert_admitted(results: list[RunResult]) -> None:
    """Each run's identity was admitted at least once: a run refused throughout would have fuzzed refusals only."""
    for result in results:
        pinned = result.run.identity.name
        admitted = [exchange for exchange in result.exchanges if exchange.identity == pinned and exchange.status < 300]
        assert admitted, f"{result.run.name}: no request as {pinned} was admitted"


def admissions(results: list[RunResult], labels: set[str]) -> list[str]:
    """The operations of ``labels`` that answered a run's own identity with anything but a refusal."""
    return sorted(
        {
            f"{exchange.operation} -> {exchange.status}"
            for result in results
            for exchange in result.exchanges
            if exchange.operation in labels and exchange.identity == result.run.identity.name and exchange.status < 400
        }
    )


def assert_still_signed_in(results: list[RunResult], served: Served) -> None:
    """Each run's pinned token still works: an identity lost mid-run would have fuzzed 401s only."""
    for result in results:
        status, _ = call(served.port, "GET", "/api/v1/me", host=result.run.host, token=result.run.identity.token)
        assert status == 200, f"{result.run.name}'s token stopped working during its run"


def test_every_operation_holds_to_the_schema_for_each_role_that_may_call_it(
    served: Served, members: dict[str, DemoMember]
) -> None:
    coverage = coverage_plan(served.schemas)
    runs = {
        community: community_runs(served, community, members, operations, coverage)
        for community, (_, operations) in served.schemas.items()
    }

    results = flat(in_lanes(runs, served=served))

    assert_admitted(results)
    assert_still_signed_in(results, served)
    assert_clean(results, served)


def test_a_token_of_the_other_community_is_admitted_by_no_guarded_operation(
    served: Served, members: dict[str, DemoMember]
) -> None:
    # Given each community's investigator, signed in on their own host, sending their token to the other one.
    runs = {}
    for community, (_, operations) in served.schemas.items():
        outsider = members[f"{other(community)}-principal_investigator"]
        name = f"{outsider.name}-on-{community}"
        runs[community] = iter(
            [
                FuzzRun(
                    name=name,
                    host=HOSTS[community],
                    identity=Identity(name, outsider.sign_in()),
                    operations=tuple(operation.label for operation in operations),
                    phases=("fuzzing",),
                    max_examples=None if long_run() else CROSS_EXAMPLES,
                )
            ]
        )

    # When the fuzzer sends it to every operation there.
    lanes = in_lanes(runs, served=served)

    # Then no guarded operation answered it with anything but a refusal.
    for community, results in lanes.items():
        guarded = {operation.label for operation in served.schemas[community][1] if operation.guarded}
        admitted = admissions(results, guarded)
        assert not admitted, f"the other community's token was admitted on {HOSTS[community]}: {admitted}"
    assert_clean(flat(lanes), served)


def test_a_role_is_refused_every_operation_the_policy_does_not_grant_it(
    served: Served, members: dict[str, DemoMember]
) -> None:
    # Given each community's auditor: the policy grants it the audit reads and its own session, nothing else.
    granted = policy_matrix().roles[Role.AUDITOR]
    runs = {}
    for community, (_, operations) in served.schemas.items():
        auditor = members[f"{community}-auditor"]
        name = f"{auditor.name}-refused"
        runs[community] = iter(
            [
                FuzzRun(
                    name=name,
                    host=auditor.host,
                    identity=Identity(name, auditor.sign_in()),
                    operations=tuple(op.label for op in operations if op.route not in SESSION_ROUTES),
                    phases=("fuzzing",),
                    max_examples=None if long_run() else CROSS_EXAMPLES,
                )
            ]
        )

    # When the fuzzer sends its token to every operation of its own host.
    lanes = in_lanes(runs, served=served)

    # Then each operation whose action the policy does not grant it refused it.
    for community, results in lanes.items():
        refused = {op.label for op in served.schemas[community][1] if op.guarded and op.action not in granted}
        admitted = admissions(results, refused)
        assert not admitted, f"the auditor of {community} was admitted where the policy grants it nothing: {admitted}"
    assert_clean(flat(lanes), served)


# Before the sessions' test: its fuzzed sign-ins lock 127.0.0.1 out of signing in.
def test_a_response_shape_the_schema_does_not_say_fails_the_run(
    served: Served, members: dict[str, DemoMember], tmp_path: Path
) -> None:
    # Given the served schema with one response shape changed the service was not changed for: a study's title
    # documented as an integer, and its protocol number as a field every study must have under another name.
    path, _ = served.schemas["alpha"]
    schema = yaml.safe_load(path.read_text(encoding="utf-8"))
    study = schema["components"]["schemas"]["Study"]
    study["properties"]["title"] = {"type": "integer"}
    study["properties"]["protocol"] = study["properties"].pop("protocol_number")
    study["required"] = [*(name for name in study.get("required", []) if name != "protocol_number"), "protocol"]
    drifted = tmp_path / "schema-drifted.yaml"
    drifted.write_text(yaml.safe_dump(schema), encoding="utf-8")
    pi = members["alpha-principal_investigator"]
    token = pi.sign_in()
    body = {"title": "Drift", "protocol_number": "DRIFT-1"}
    status, made = call(served.port, "POST", "/api/v1/studies/", host=pi.host, token=token, body=body)
    assert status in {201, 409}, made  # 409: made by an earlier run of this test on the same server
    run = FuzzRun(
        name="drifted",
        host=pi.host,
        identity=Identity("drifted", token),
        operations=("GET /api/v1/studies/",),
        phases=("examples", "fuzzing"),
        max_examples=CROSS_EXAMPLES,
    )

    # When the fuzzer holds the service to it.
    result = fuzz(run, schema=drifted, base_url=served.base_url, budget=served.budget, directory=tmp_path / "run")

    # Then the run fails on the response's schema, naming the fields.
    conformance = [failure for failure in result.failures if failure.check == "response_schema_conformance"]
    assert conformance, failure_report([result], directory=tmp_path)
    assert not result.clean
    found = " ".join(failure.message for failure in conformance)
    assert "title" in found or "protocol" in found, found


def test_signing_in_refreshing_and_signing_out_hold_to_the_schema(
    served: Served, members: dict[str, DemoMember]
) -> None:
    # Last in this module: the fuzzed sign-ins lock 127.0.0.1 out of signing in, which every run before needs,
    # and the fuzzed sign-outs end the session they carry, so it is one of its own (signed in before either run).
    runs = {}
    for community, (_, operations) in served.schemas.items():
        member = members[f"{community}-researcher"]
        runs[community] = iter(
            [
                FuzzRun(
                    name=f"{community}-sessions",
                    host=member.host,
                    identity=Identity(f"{member.name} (own session)", member.sign_in()),
                    operations=tuple(operation.label for operation in operations if operation.route in SESSION_ROUTES),
                    # The coverage phase once per operation in CI (see coverage_plan): on alpha's host.
                    phases=ALL_PHASES if long_run() or community == "alpha" else ("examples", "fuzzing"),
                )
            ]
        )

    assert_clean(flat(in_lanes(runs, served=served)), served)
