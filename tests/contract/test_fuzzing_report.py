"""The fuzzer's NDJSON reports are read into failures and exchanges, and the failures are grouped by cause.

These need no server: each test writes a report the way schemathesis 4 does (one JSON event per line) and reads it
back through tests/support/fuzzing.py, so that the grouping the CI log shows is itself held to what it claims.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from tests.support.fuzzing import FuzzRun, Identity, RunResult, failure_report, read_report, unique_failures

RUN = FuzzRun(name="alpha-principal_investigator", host="alpha.localhost", identity=Identity("pi", "t"), operations=())


def problem(status: int, code: str, errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A recorded answer carrying a problem document."""
    document = {"status": status, "code": code, **({"errors": errors} if errors else {})}
    return {"status_code": status, "content": {"$base64": base64.b64encode(json.dumps(document).encode()).decode()}}


def scenario(label: str, cases: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]) -> dict[str, Any]:
    """A ``ScenarioFinished`` event: per case id, the answer and the checks run on it."""
    method, path = label.split(" ", 1)
    return {
        "ScenarioFinished": {
            "recorder": {
                "label": label,
                "cases": {case: {"value": {"method": method, "path": path, "auth_identity": "pi"}} for case in cases},
                "checks": {case: checks for case, (_, checks) in cases.items()},
                "interactions": {case: {"response": answer} for case, (answer, _) in cases.items()},
            }
        }
    }


def undocumented(status: int, operation: str) -> dict[str, Any]:
    """A failing ``status_code_conformance`` check."""
    failure = {"code": "ST103", "title": "Undocumented status code", "operation": operation, "message": f"{status}"}
    return {"name": "status_code_conformance", "status": "failure", "failure_info": {"failure": failure}}


def rejected(operation: str) -> dict[str, Any]:
    """A failing ``positive_data_acceptance`` check."""
    failure = {"code": "ST202", "title": "Schema-valid request rejected", "operation": operation, "message": "."}
    return {"name": "positive_data_acceptance", "status": "failure", "failure_info": {"failure": failure}}


def read(tmp_path: Path, *events: dict[str, Any]) -> RunResult:
    report = tmp_path / "ndjson-1.ndjson"
    report.write_text("\n".join(json.dumps(event) for event in events), encoding="utf-8")
    result = RunResult(run=RUN, returncode=1, output="", seconds=0.0)
    read_report(result, report)
    return result


def test_cases_failing_alike_on_one_operation_are_one_failure_listed_with_their_problem_codes(tmp_path: Path) -> None:
    studies, participants = "GET /api/v1/studies/{id}/", "GET /api/v1/participants/{id}/"
    missing = problem(404, "not_found")
    result = read(
        tmp_path,
        scenario(studies, {"a": (missing, [undocumented(404, studies)]), "b": (missing, [undocumented(404, studies)])}),
        scenario(participants, {"c": (problem(404, "participant_not_found"), [undocumented(404, participants)])}),
    )

    grouped = unique_failures([result])
    report = failure_report([result], directory=tmp_path)

    assert list(grouped) == ["ST103 Undocumented status code: 404"]
    assert sorted(grouped["ST103 Undocumented status code: 404"]) == [participants, studies]
    assert "2 unique failures (operation and cause) in 1 runs, 1 causes" in report
    assert f"{studies} (not_found)" in report
    assert f"{participants} (participant_not_found)" in report


def test_a_rejected_valid_request_counts_once_per_validation_code_naming_its_fields(tmp_path: Path) -> None:
    operation = "POST /api/v1/participants/"
    errors = [
        {"field": "city", "code": "control_characters"},
        {"field": "date_of_birth", "code": "too_old"},
        {"field": "\u0000x", "code": "unknown_field"},
    ]
    result = read(
        tmp_path, scenario(operation, {"a": (problem(400, "validation_failed", errors), [rejected(operation)])})
    )

    report = failure_report([result], directory=tmp_path)

    assert "answered 400 validation_failed [control_characters]" in report
    assert "answered 400 validation_failed [too_old]" in report
    assert "answered 400 validation_failed [unknown_field]" in report
    assert f"{operation} (city)" in report
    assert "\u0000x" not in report, "a generated field name says nothing and stays out of the report"


def test_every_exchange_is_kept_with_its_identity_and_status_and_the_checks_that_ran(tmp_path: Path) -> None:
    operation = "GET /api/v1/me"
    passed = {"name": "not_a_server_error", "status": "success"}
    result = read(tmp_path, scenario(operation, {"a": ({"status_code": 200}, [passed])}))

    assert [(exchange.operation, exchange.identity, exchange.status) for exchange in result.exchanges] == [
        (operation, "pi", 200)
    ]
    assert result.checks == {"not_a_server_error"}
    assert result.failures == []
