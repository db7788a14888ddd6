"""Review tooling: policy_test, policy_eval, policy_diff and policy_record, as a security team uses them."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from policy.corpus.build_sample import actions_and_roles, sample
from policy.review import second_engine
from security.models import User
from tenants.models import Community
from tests.doubles.opa import REPOSITORY_POLICY
from tests.support.clients import ALPHA_HOST, BETA_HOST, bearer
from tests.support.tokens import token_for

SAMPLE_CORPUS = REPOSITORY_POLICY.parent / "corpus" / "sample.jsonl"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    target = tmp_path / "rego"
    shutil.copytree(REPOSITORY_POLICY, target)
    return target


def engine_figures(output: str, engine: str) -> list[tuple[int, int]]:
    """(tests, failed) of each directory's summary line for ``engine``."""
    pattern = rf"^  {engine} [^:]*: (\d+) tests, (\d+) failed"
    return [(int(tests), int(failed)) for tests, failed in re.findall(pattern, output, re.MULTILINE)]


def test_the_policy_tests_pass_under_both_engines_and_reach_every_rule() -> None:
    output = run("policy_test")

    assert "FAIL" not in output
    assert f"{REPOSITORY_POLICY}:" in output
    assert f"{settings.OPA_AUTHZ_POLICY_DIR}:" in output
    tests = output.count("PASS ")
    assert tests >= 80
    embedded, second = engine_figures(output, "regopy"), engine_figures(output, "regorus")
    assert len(embedded) == len(second) == 2
    assert embedded == second
    assert sum(count for count, _ in embedded) == tests
    assert all(failed == 0 for _, failed in embedded + second)
    for reached, _, total in re.findall(r"rule clauses reached by a test \(regopy\): (\d+)( of )(\d+)", output):
        assert reached == total


def policy_test_with(policy_copy: Path, rule: str, failures: int) -> str:
    """Add ``rule`` to the copy's tests; run policy_test, which must fail ``failures`` results; return its output."""
    tests = policy_copy / "gateway" / "authz_test.rego"
    tests.write_text(tests.read_text() + "\n" + rule + "\n")
    out = io.StringIO()
    with pytest.raises(CommandError, match=f"{failures} policy test result"):
        call_command("policy_test", "--dir", str(policy_copy), stdout=out)
    return out.getvalue()


def test_a_failing_rego_test_fails_the_command(policy_copy: Path) -> None:
    wrong = 'test_researchers_approve_exports if {\n\tdecide(acting(as_role("researcher"), "export.approve")).allow\n}'

    output = policy_test_with(policy_copy, wrong, failures=2)

    assert "FAIL gateway.authz_test.test_researchers_approve_exports  regopy: undefined; regorus: undefined" in output


def test_a_test_only_the_embedded_engine_passes_fails_the_command(policy_copy: Path) -> None:
    # rego-cpp merges one level deep, OPA and regorus recursively: a test relying on either is not portable.
    shallow = 'test_union_is_shallow if {\n\tobject.union({"a": {"b": 1}}, {"a": {"c": 2}}) == {"a": {"c": 2}}\n}'

    output = policy_test_with(policy_copy, shallow, failures=1)

    assert "FAIL gateway.authz_test.test_union_is_shallow  regorus: undefined" in output
    assert engine_figures(output, "regopy")[0][1] == 0
    assert "1 failed: gateway.authz_test.test_union_is_shallow" in output


def test_a_worker_that_ends_early_with_exit_status_0_fails_the_tests_it_never_ran(
    policy_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run = subprocess.run

    def ends_after_ten_tests(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        completed = real_run(*args, **kwargs)
        lines = completed.stdout.splitlines()
        results = [number for number, line in enumerate(lines) if line.startswith("RESULT ")]
        cut = lines[: results[9] + 1] if len(results) > 10 else lines
        return subprocess.CompletedProcess(completed.args, 0, "\n".join(cut) + "\n", completed.stderr)

    monkeypatch.setattr(subprocess, "run", ends_after_ten_tests)
    out = io.StringIO()

    with pytest.raises(CommandError, match="policy test result"):
        call_command("policy_test", "--dir", str(policy_copy), stdout=out)
    output = out.getvalue()
    assert "the worker ended (exit 0) without this test's verdict" in output
    assert "PASS" in output


def test_a_negation_inside_every_fails_the_command_under_every_engine(policy_copy: Path) -> None:
    # regopy holds this true whatever the policy says; regorus and OPA leave it undefined.
    vacuous = (
        'test_nobody_rotates_keys if {\n\tevery role in ["owner"] {\n'
        '\t\tnot decide(acting(as_role(role), "key.rotate")).allow\n\t}\n}'
    )

    output = policy_test_with(policy_copy, vacuous, failures=1)

    assert re.search(r"FAIL gateway/authz_test\.rego:\d+: `not` inside an `every` body", output)
    assert 'canary `every c in ["a"] { not c == "a" }`: regopy true (vacuous), regorus undefined (sound)' in output


def test_without_regorus_the_command_says_it_did_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(second_engine, "load", lambda: None)

    output = run("policy_test")

    assert output.count("regorus: not installed, not run") == 2
    assert engine_figures(output, "regorus") == []
    with pytest.raises(CommandError, match="regorus: not installed, not run"):
        run("policy_test", "--require-second-engine")


def test_a_rule_no_test_reaches_is_named(policy_copy: Path) -> None:
    policy = policy_copy / "gateway" / "authz.rego"
    policy.write_text(policy.read_text() + '\nescalated(inp) if inp.subject.id == "root"\n')
    out = io.StringIO()

    call_command("policy_test", "--dir", str(policy_copy), stdout=out)
    assert "not reached: gateway/authz.rego:" in out.getvalue()
    assert "escalated" in out.getvalue()
    with pytest.raises(CommandError, match="not reached"):
        call_command("policy_test", "--dir", str(policy_copy), "--fail-on-unreached", stdout=io.StringIO())


def test_policy_eval_shows_the_decision_and_the_denial_that_fired(tmp_path: Path) -> None:
    document = json.loads(SAMPLE_CORPUS.read_text().splitlines()[0])
    document.update(action="key.rotate")
    document["subject"].update(roles=["owner"])
    path = tmp_path / "input.json"
    path.write_text(json.dumps(document))

    output = run("policy_eval", "--input", str(path))

    decision = json.loads(output.split("decision:\n")[1].split("\n\ndenials:")[0])
    assert decision["allow"] is False
    assert decision["reasons"] == ["mfa_required"]
    assert "FIRED mfa_required" in output
    assert "-     not_a_member" in output
    assert "  elevated                 true" in output


def test_policy_eval_refuses_input_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text("{nope")

    with pytest.raises(CommandError, match="not JSON"):
        run("policy_eval", "--input", str(path))


def git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(directory), *args], check=True, capture_output=True)  # noqa: S603, S607


@pytest.fixture
def policy_repository(tmp_path: Path) -> Path:
    """A git repository whose HEAD holds the repository's policy; returns its policy directory."""
    repository = tmp_path / "repo"
    shutil.copytree(REPOSITORY_POLICY, repository / "policy" / "rego")
    git(repository, "init", "-q")
    git(repository, "-c", "user.email=t@example.org", "-c", "user.name=t", "add", ".")
    git(repository, "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qm", "base")
    return repository / "policy" / "rego"


def diff_against_head(policy_repository: Path, *options: str) -> str:
    return run(
        "policy_diff", "--base", "HEAD", "--corpus", str(SAMPLE_CORPUS), "--dir", str(policy_repository), *options
    )


def test_policy_diff_reports_exactly_the_decisions_a_change_flips(policy_repository: Path, tmp_path: Path) -> None:
    data_file = policy_repository / "data.json"
    data = json.loads(data_file.read_text())
    data["gateway"]["matrix"]["roles"]["researcher"].remove("participant.read")
    data_file.write_text(json.dumps(data))
    markdown = tmp_path / "diff.md"

    output = diff_against_head(policy_repository, "--markdown-out", str(markdown))

    assert "720 recorded decisions evaluated, 3 changed" in output
    changed = [line for line in output.splitlines() if line.startswith("line ")]
    assert len(changed) == 3
    assert all(": researcher participant.read: " in line for line in changed)
    # Two reads flip; one was already refused (no consent) and now is for lack of the role.
    assert "    2  allow→deny           researcher                   participant.read" in output
    assert "    1  reasons changed      researcher                   participant.read" in output
    assert "| allow→deny | researcher | `participant.read` | 2 |" in markdown.read_text()


def test_policy_diff_names_obligation_changes_too(policy_repository: Path) -> None:
    data_file = policy_repository / "data.json"
    data = json.loads(data_file.read_text())
    data["gateway"]["matrix"]["phi_fields"]["observation"].append("value")
    data_file.write_text(json.dumps(data))

    output = diff_against_head(policy_repository)

    changed = [line for line in output.splitlines() if line.startswith("line ")]
    assert changed
    # The redacted view, and the echo of every write outside the PHI list, withhold the field.
    assert all(
        "obligations changed: researcher observation." in line or " observation.create: " in line for line in changed
    )
    assert any(" observation.create: " in line for line in changed)


def test_an_unchanged_policy_flips_nothing(policy_repository: Path) -> None:
    output = diff_against_head(policy_repository, "--format", "markdown")

    assert "**0** of 720 recorded decisions change." in output


def test_policy_diff_refuses_a_missing_corpus() -> None:
    with pytest.raises(CommandError, match="no corpus"):
        run("policy_diff", "--base", "HEAD", "--corpus", "/nonexistent.jsonl")


def test_policy_record_exports_this_communitys_inputs_without_phi(
    alpha: Community,
    beta: Community,
    member: Callable[..., User],
    client_for: Callable[[str], APIClient],
    tmp_path: Path,
) -> None:
    alpha_user = member(alpha, "researcher")
    beta_user = member(beta, "auditor")
    bearer(client_for(ALPHA_HOST), token_for(alpha_user, alpha)).get("/api/v1/me")
    bearer(client_for(BETA_HOST), token_for(beta_user, beta)).get("/api/v1/me")
    out = tmp_path / "alpha.jsonl"

    message = run("policy_record", "--community", "alpha", "--out", str(out))

    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert message.startswith(f"wrote {len(lines)} inputs from alpha")
    assert lines
    assert {line["community"]["slug"] for line in lines} == {"alpha"}
    assert alpha_user.email not in out.read_text()
    assert str(beta_user.pk) not in out.read_text()


def test_policy_record_refuses_a_time_without_a_zone(alpha: Community, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="ISO 8601"):
        run("policy_record", "--community", "alpha", "--since", "2026-11-01", "--out", str(tmp_path / "x.jsonl"))


def test_the_sample_corpus_holds_every_role_and_every_action_of_the_policy_data() -> None:
    data = json.loads((REPOSITORY_POLICY / "data.json").read_text(encoding="utf-8"))
    actions, roles = actions_and_roles(data)

    rows = [json.loads(line) for line in SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()]

    assert rows == sample(data), "rebuild it: python -m policy.corpus.build_sample"
    assert {row["action"] for row in rows} == set(actions)
    assert {row["subject"]["roles"][0] for row in rows} == set(roles)
