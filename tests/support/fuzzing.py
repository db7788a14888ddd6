"""Schemathesis runs against a served API, and what they found, grouped by cause for a reader of the CI log.

Each :class:`FuzzRun` is one ``schemathesis run`` (the CLI of the venv, as a subprocess) over some operations of
the served schema, on one community's host, as one pinned identity: a Web Fuzzing Commons auth document names
that identity and its *peers*, the other identities ``object_level_authorization`` replays each successful read
as (a peer that gets the owner's object back is a failure). Every check schemathesis has runs (``--checks all``,
``max_response_time`` included through its limit), with a fixed seed, a bounded number of examples per operation
and neither schemathesis's cache nor hypothesis's example database, so a run does what its arguments say and
nothing an earlier run left behind. ``--generation-with-security-parameters false``: the run's identity is the
only credential a request carries; the invalid and missing credentials are ``ignored_auth``'s to send.

The NDJSON report is read back into :class:`Failure` rows (one per failing check of a case) and every exchange
(operation, identity, status), so that a caller can make assertions of its own, and :func:`failure_report`
folds the rows of many runs into one line per cause, naming the operations it was seen on.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway.openapi import refuses_the_schema_s_own_rules

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# Every test phase schemathesis 4 has: the schema's own examples, the coverage phase's boundary and negative
# values, hypothesis's fuzzing, and stateful sequences that feed a response's ids into the next request.
ALL_PHASES = ("examples", "coverage", "fuzzing", "stateful")
RUN_TIMEOUT_SECONDS = 1800.0


@dataclass(frozen=True)
class Identity:
    """A credential the fuzzer sends: its name in the reports and the bearer token."""

    name: str
    token: str

    def wfc_entry(self) -> dict[str, Any]:
        """The identity as an entry of a Web Fuzzing Commons auth document."""
        return {"name": self.name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {self.token}"}]}


@dataclass(frozen=True)
class Budget:
    """How much a run may generate: the seed, examples per operation and phase, the slowest answer allowed."""

    seed: int
    max_examples: int
    max_response_seconds: float

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], *, seed: int, max_examples: int) -> Budget:
        """The defaults given, overridden by ``FUZZ_SEED``, ``FUZZ_EXAMPLES`` and ``FUZZ_MAX_RESPONSE_SECONDS``."""
        return cls(
            seed=int(environ.get("FUZZ_SEED") or seed),
            max_examples=int(environ.get("FUZZ_EXAMPLES") or max_examples),
            max_response_seconds=float(environ.get("FUZZ_MAX_RESPONSE_SECONDS") or 10.0),
        )


@dataclass(frozen=True)
class FuzzRun:
    """One schemathesis run: operations (``METHOD /path`` labels) on a host, as one identity, in some phases."""

    name: str
    host: str
    identity: Identity
    operations: tuple[str, ...]
    phases: tuple[str, ...] = ALL_PHASES
    peers: tuple[Identity, ...] = ()
    # Operations whose coverage phase another run does: its cases come from the schema alone.
    without_coverage: tuple[str, ...] = ()
    # Examples per operation and phase when not the budget's.
    max_examples: int | None = None
    # Values that exist on the server, by parameter (``body.study``, ``query.participant``): drawn half the time.
    known: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """One failing check of one case (or an error of the run), with what the server answered.

    ``problem`` is the problem document's ``code``; ``errors`` its validation errors as ``(field, code)``.
    """

    run: str
    operation: str
    check: str
    title: str
    message: str
    status: int | None = None
    problem: str | None = None
    errors: tuple[tuple[str, str], ...] = ()

    @property
    def cause(self) -> str:
        """What the failure says about the schema, without the generated values that differ from case to case."""
        if self.check == "status_code_conformance":
            return f"{self.title}: {self.status}"
        if self.check == "positive_data_acceptance":
            codes = ", ".join(sorted({code for _, code in self.errors}))
            return f"{self.title}: answered {self.status} {self.problem or ''}" + (f" [{codes}]" if codes else "")
        if self.check == "negative_data_rejection":
            return f"{self.title}: answered {self.status}"
        if self.check == "response_schema_conformance":
            return f"{self.title}: {_schema_error(self.message)}"
        return f"{self.title}: {_first_line(self.message)}"

    @property
    def details(self) -> frozenset[str]:
        """What tells one operation's case from another's under the same cause (the problem code, the fields)."""
        if self.check == "status_code_conformance":
            return frozenset(filter(None, [self.problem]))
        if self.check == "positive_data_acceptance":
            # Unknown fields carry generated names, which say nothing: the code alone is in the cause.
            return frozenset(name for name, code in self.errors if code != "unknown_field")
        if self.check == "negative_data_rejection":
            return frozenset(
                line.split(":", 1)[1].strip() for line in self.message.splitlines() if "component:" in line
            )
        if self.check == "response_schema_conformance":
            # Where in the response schema the answer broke it (``/properties/display``).
            return frozenset(re.findall(r"^Schema at (\S+):$", self.message, flags=re.MULTILINE))
        return frozenset()


@dataclass(frozen=True)
class Exchange:
    """One request of a run and the status of its answer."""

    operation: str
    identity: str | None
    status: int


@dataclass
class RunResult:
    """What one run did: its exit status, output, failures, the checks it ran and every exchange."""

    run: FuzzRun
    returncode: int
    output: str
    seconds: float
    failures: list[Failure] = field(default_factory=list)
    checks: set[str] = field(default_factory=set)
    rules_of_the_data: set[str] = field(default_factory=set)  # schema-valid requests the data refused (see below)

    @property
    def clean(self) -> bool:
        """No failure, and schemathesis exited 0 or found nothing but rules of the data (which it counts)."""
        return not self.failures and (self.returncode == 0 or bool(self.rules_of_the_data))

    exchanges: list[Exchange] = field(default_factory=list)


def _first_line(message: str, *, skip: int = 0) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[skip] if len(lines) > skip else ""


def _schema_error(message: str) -> str:
    """The validator's complaint with the offending value elided (``<value> is not of type "array"``, ...)."""
    line = _first_line(message)
    elided = re.sub(
        r"^.*?\s(is not|is a required|does not|is too|has non-unique|should not|is valid under)", r"\1", line
    )
    status = re.search(r"response schema for status code (\d+)", message)
    return f"{elided} (status {status.group(1)})" if status else elided


def _command(run: FuzzRun, *, schema: Path, base_url: str, budget: Budget, reports: Path) -> list[str]:
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(reports / "schemathesis.toml"),
        "run",
        str(schema),
        "--url",
        base_url,
        "--header",
        f"Host: {run.host}",
        "--checks",
        "all",
        "--max-response-time",
        str(budget.max_response_seconds),
        "--phases",
        ",".join(run.phases),
        "--seed",
        str(budget.seed),
        "--max-examples",
        str(run.max_examples or budget.max_examples),
        "--workers",
        "1",
        "--continue-on-failure",
        "--generation-with-security-parameters",
        "false",
        "--generation-database",
        "none",
        "--report",
        "junit,ndjson",
        "--report-dir",
        str(reports),
        "--no-color",
    ]
    for operation in run.operations:
        command += ["--include-name", operation]
    return command


def _configuration(run: FuzzRun) -> str:
    identities = [run.identity.name, *(peer.name for peer in run.peers)]
    peers = f"peers = {json.dumps(identities)}\n" if run.peers else ""
    text = (
        "# Written by tests/support/fuzzing.py for one run.\n"
        "[cache]\nenabled = false\n\n"
        # A missing If-Match is answered 428 Precondition Required (RFC 6585), which schemathesis does not list.
        "[checks.missing_required_header]\nexpected-statuses = [400, 401, 403, 406, 415, 422, 428]\n\n"
        f'[auth.wfc]\npath = "auth.json"\nuser = {json.dumps(run.identity.name)}\n{peers}'
    )
    if run.known:
        text += "\n[dictionaries]\n" + "".join(
            f"{json.dumps(key.replace('.', '-'))} = {{ values = {json.dumps(list(values))} }}\n"
            for key, values in sorted(run.known.items())
        )
        text += "\n[parameters]\n" + "".join(
            f"{json.dumps(key)} = {{ dictionary = {json.dumps(key.replace('.', '-'))}, probability = 0.5 }}\n"
            for key in sorted(run.known)
        )
    if run.without_coverage and "coverage" in run.phases:
        names = json.dumps(sorted(run.without_coverage))
        text += f"\n[[operations]]\ninclude-name = {names}\nphases.coverage.enabled = false\n"
    return text


def fuzz(run: FuzzRun, *, schema: Path, base_url: str, budget: Budget, directory: Path) -> RunResult:
    """Run schemathesis for ``run`` in ``directory`` (its configuration, reports and output stay there)."""
    directory.mkdir(parents=True, exist_ok=True)
    # A kept report directory (``make fuzz``) may hold an earlier run's reports: they are not this run's.
    for earlier in [*directory.glob("ndjson-*.ndjson"), *directory.glob("junit-*.xml")]:
        earlier.unlink()
    auth = {"auth": [run.identity.wfc_entry(), *(peer.wfc_entry() for peer in run.peers)]}
    (directory / "auth.json").write_text(json.dumps(auth, indent=1), encoding="utf-8")
    (directory / "schemathesis.toml").write_text(_configuration(run), encoding="utf-8")
    command = _command(run, schema=schema, base_url=base_url, budget=budget, reports=directory)
    started = time.monotonic()
    completed = subprocess.run(  # noqa: S603  # nosec B603 - the venv's schemathesis with arguments of this module
        command,
        cwd=directory,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    output = completed.stdout + completed.stderr
    (directory / "output.txt").write_text(output, encoding="utf-8")
    result = RunResult(run=run, returncode=completed.returncode, output=output, seconds=time.monotonic() - started)
    for report in sorted(directory.glob("ndjson-*.ndjson")):
        read_report(result, report)
    if not result.clean:
        result.failures.append(Failure(run.name, "(run)", "exit status", "schemathesis failed", output[-2000:]))
    return result


def read_report(result: RunResult, report: Path) -> None:
    """Add what a schemathesis NDJSON report holds to ``result``: its failures, checks and exchanges."""
    for line in report.read_text(encoding="utf-8").splitlines():
        event: dict[str, Any] = json.loads(line)
        for kind in ("NonFatalError", "FatalError"):
            if kind in event:
                result.failures.append(_error(result.run.name, event[kind]))
        scenario = event.get("ScenarioFinished")
        if scenario is not None:
            _read_scenario(result, scenario.get("recorder") or {})


def _error(run: str, event: Mapping[str, Any]) -> Failure:
    value = event.get("value") or event.get("info") or event
    text = json.dumps(value)[:1000] if not isinstance(value, str) else value
    label = event.get("label") or "(run)"
    return Failure(run, str(label), "error", "Schemathesis error", text)


def _read_scenario(result: RunResult, recorder: Mapping[str, Any]) -> None:
    cases: Mapping[str, Any] = recorder.get("cases") or {}
    interactions: Mapping[str, Any] = recorder.get("interactions") or {}
    for case_id, case in cases.items():
        value = case.get("value") or {}
        response = (interactions.get(case_id) or {}).get("response")
        if response is not None:
            operation = f"{value.get('method', '').upper()} {value.get('path', '')}"
            result.exchanges.append(Exchange(operation, value.get("auth_identity"), int(response["status_code"])))
    for case_id, checks in (recorder.get("checks") or {}).items():
        response = (interactions.get(case_id) or {}).get("response") or {}
        problem, errors = _problem(response)
        for check in checks:
            result.checks.add(str(check["name"]))
            if check.get("status") != "failure":
                continue
            failure = (check.get("failure_info") or {}).get("failure") or {}
            found = Failure(
                run=result.run.name,
                operation=str(failure.get("operation") or recorder.get("label", "")),
                check=str(check["name"]),
                title=f"{failure.get('code', '')} {failure.get('title', '')}".strip(),
                message=str(failure.get("message", "")),
                status=response.get("status_code"),
                problem=problem,
                errors=errors,
            )
            if _a_rule_of_the_data(found):
                result.rules_of_the_data.add(found.cause)
                continue
            result.failures.extend(_by_error_code(found))


def _a_rule_of_the_data(failure: Failure) -> bool:
    """A schema-valid request refused (400) for what only the community's data can say, which no schema states.

    A study this community does not have, a date in the future, a cursor it never issued, a wrong one-time
    password: the schema cannot hold them, so a request that fits it may get them. Any refusal the schema does
    state (a type, a length, a pattern, a choice, a required or unknown field: gateway.openapi's
    SCHEMA_FIELD_CODES) is still a failure: the schema is looser than the service.
    """
    if failure.check != "positive_data_acceptance" or failure.status != 400 or failure.problem is None:
        return False
    document = {"code": failure.problem, "errors": [{"field": name, "code": code} for name, code in failure.errors]}
    return not refuses_the_schema_s_own_rules(document)


def _by_error_code(failure: Failure) -> Iterator[Failure]:
    """A rejected valid request once per validation error code: each code is a constraint the schema lacks."""
    codes = sorted({code for _, code in failure.errors})
    if failure.check != "positive_data_acceptance" or len(codes) < 2:
        yield failure
        return
    for code in codes:
        yield replace(failure, errors=tuple(error for error in failure.errors if error[1] == code))


def _problem(response: Mapping[str, Any]) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """The problem document's ``code`` and its validation errors as ``(field, code)``, when the answer is one."""
    content = response.get("content")
    if not isinstance(content, Mapping) or "$base64" not in content:
        return None, ()
    try:
        body = json.loads(base64.b64decode(content["$base64"]))
    except ValueError:
        return None, ()
    if not isinstance(body, dict) or "code" not in body:
        return None, ()
    errors = body.get("errors")
    listed = errors if isinstance(errors, list) else []
    pairs = {(str(error.get("field")), str(error.get("code"))) for error in listed if isinstance(error, dict)}
    return str(body["code"]), tuple(sorted(pairs))


def _operations(failures: Mapping[str, list[Failure]]) -> str:
    named = []
    for operation, found in sorted(failures.items()):
        details = sorted(set().union(*(failure.details for failure in found)))
        named.append(f"{operation} ({', '.join(details)})" if details else operation)
    return "\n      ".join(named)


def unique_failures(results: Iterable[RunResult]) -> dict[str, dict[str, list[Failure]]]:
    """The failures of ``results`` by cause, then by operation: the cases that fail alike on one operation are one."""
    by_cause: dict[str, dict[str, list[Failure]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        for failure in result.failures:
            by_cause[failure.cause][failure.operation].append(failure)
    return {cause: dict(by_operation) for cause, by_operation in sorted(by_cause.items())}


def failure_report(results: list[RunResult], *, directory: Path) -> str:
    """One line per cause, then the operations it was seen on (with problem codes or fields); where the outputs are."""
    grouped = unique_failures(results)
    total = sum(len(by_operation) for by_operation in grouped.values())
    lines = [
        f"schemathesis: {total} unique failures (operation and cause) in {len(results)} runs, "
        f"{len(grouped)} causes. Each run's output, JUnit and NDJSON reports are under {directory}.",
    ]
    for cause, by_operation in grouped.items():
        runs = sorted({failure.run for found in by_operation.values() for failure in found})
        lines.append(f"- {cause} [{len(by_operation)} operations; runs: {', '.join(runs)}]")
        lines.append(f"      {_operations(by_operation)}")
    return "\n".join(lines)


def timings(results: Iterable[RunResult]) -> Iterator[str]:
    """Each run's name, operations, exit status and time."""
    for result in results:
        yield (
            f"{result.run.name}: {len(result.run.operations)} operations, phases {','.join(result.run.phases)}, "
            f"exit {result.returncode}, {result.seconds:.1f} s"
        )
