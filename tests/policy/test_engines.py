"""Both engines decide the same, and both fail closed.

The OPA engine runs against the loopback double (``tests/doubles/opa.py``,
after OPA v1.9.0) and, when ``OPA_URL`` is set (with ``OPA_TOKEN`` for an OPA
run as ``deploy/opa`` runs it), against a real server too; none has been
run here.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from policy.decision import Decision
from policy.engine import EmbeddedEngine, OpaEngine, compile_policy
from policy.errors import PolicyUnavailable
from policy.source import PolicySource
from tests.doubles.opa import (
    ANSWER_DEADLINE_SECONDS,
    BUNDLE_REVISION,
    DEADLINE_SECONDS,
    REPOSITORY_POLICY,
    OpaState,
    running_opa,
)
from tests.policy.edge_inputs import BASE

CORPUS = Path(__file__).resolve().parents[2] / "policy" / "corpus" / "sample.jsonl"


def corpus(limit: int = 200) -> list[dict[str, Any]]:
    with CORPUS.open() as lines:
        return [json.loads(line) for _, line in zip(range(limit), lines, strict=False)]


@pytest.fixture(scope="module")
def embedded() -> EmbeddedEngine:
    return EmbeddedEngine(PolicySource.from_directory(REPOSITORY_POLICY))


@pytest.fixture
def opa_double() -> Iterator[tuple[str, OpaState]]:
    with running_opa() as (url, state):
        yield url, state


@pytest.fixture
def opa(opa_double: tuple[str, OpaState]) -> tuple[OpaEngine, OpaState]:
    """The OPA engine asking the double, with a deadline it meets even on a loaded machine."""
    url, state = opa_double
    return OpaEngine(url, timeout=ANSWER_DEADLINE_SECONDS), state


@pytest.fixture
def opa_on_a_deadline(opa_double: tuple[str, OpaState]) -> tuple[OpaEngine, OpaState]:
    """The OPA engine asking the double, with a deadline shorter than the double's slow modes take."""
    url, state = opa_double
    return OpaEngine(url, timeout=DEADLINE_SECONDS), state


def summary(decision: Decision) -> tuple[Any, ...]:
    return decision.allow, decision.reasons, decision.obligations


def test_the_embedded_engine_decides_the_corpus_with_ids_revision_and_digest(embedded: EmbeddedEngine) -> None:
    decisions = [embedded.decide(document) for document in corpus()]

    assert any(decision.allow for decision in decisions)
    assert any(not decision.allow for decision in decisions)
    assert len({decision.decision_id for decision in decisions}) == len(decisions)
    assert all(decision.revision == embedded.revision for decision in decisions)
    assert embedded.revision.startswith("sha256:")
    assert decisions[0].input_digest.startswith("sha256:")


def test_opa_and_the_embedded_engine_agree(embedded: EmbeddedEngine, opa: tuple[OpaEngine, OpaState]) -> None:
    engine, _ = opa

    for document in corpus():
        assert summary(engine.decide(document)) == summary(embedded.decide(document))


def test_opa_decision_id_and_bundle_revision_are_read_from_the_answer(opa: tuple[OpaEngine, OpaState]) -> None:
    engine, state = opa

    decision = engine.decide(corpus(1)[0])

    assert state.requests[-1]["body"]["input"] == corpus(1)[0]
    assert "provenance=true" in state.requests[-1]["query"]
    assert decision.revision == f"opa:authz={BUNDLE_REVISION}"
    assert len(decision.decision_id) == 36


def test_without_decision_logging_the_engine_still_gives_an_id(opa: tuple[OpaEngine, OpaState]) -> None:
    engine, state = opa
    state.decision_logging = False

    assert len(engine.decide(corpus(1)[0]).decision_id) == 36


@pytest.mark.parametrize("mode", ["undefined", "non_boolean", "server_error", "slow", "drip"])
def test_every_opa_failure_is_policy_unavailable(mode: str, request: pytest.FixtureRequest) -> None:
    # Too slow is a failure only against a deadline; the other faults fail however long the engine waits.
    engine, state = request.getfixturevalue("opa_on_a_deadline" if mode in ("slow", "drip") else "opa")
    state.mode = mode

    with pytest.raises(PolicyUnavailable):
        engine.decide(corpus(1)[0])


def test_an_unreachable_opa_is_policy_unavailable() -> None:
    engine = OpaEngine("http://127.0.0.1:1", timeout=0.3)

    with pytest.raises(PolicyUnavailable):
        engine.decide(corpus(1)[0])
    with pytest.raises(PolicyUnavailable):
        engine.check_ready()


@pytest.mark.parametrize(
    ("mode", "why"),
    [("not_ready", "not ready"), ("no_bundles", "no bundle revision"), ("undefined", "undefined")],
)
def test_opa_is_ready_only_once_its_bundles_decide(mode: str, why: str, opa: tuple[OpaEngine, OpaState]) -> None:
    engine, state = opa
    engine.check_ready()

    state.mode = mode

    with pytest.raises(PolicyUnavailable) as error:
        engine.check_ready()
    assert why in error.value.why


def test_the_slow_drip_is_cut_at_the_deadline(opa_on_a_deadline: tuple[OpaEngine, OpaState]) -> None:
    engine, state = opa_on_a_deadline
    state.mode = "drip"
    started = time.monotonic()

    with pytest.raises(PolicyUnavailable):
        engine.decide(corpus(1)[0])

    assert time.monotonic() - started < 0.6


@pytest.mark.parametrize("data", [None, {"gateway": {"matrix": {}}}], ids=["no data.json", "an empty matrix"])
def test_a_policy_without_its_data_is_not_ready_and_never_decides(data: dict[str, Any] | None, tmp_path: Path) -> None:
    shutil.copytree(REPOSITORY_POLICY / "gateway", tmp_path / "gateway")
    if data is not None:
        (tmp_path / "data.json").write_text(json.dumps(data), encoding="utf-8")
    engine = EmbeddedEngine(PolicySource.from_directory(tmp_path))

    with pytest.raises(PolicyUnavailable) as error:
        engine.check_ready()
    assert "policy_error" in error.value.why
    with pytest.raises(PolicyUnavailable):
        engine.decide(corpus(1)[0])


def test_a_policy_that_does_not_compile_never_decides(tmp_path: Path) -> None:
    (tmp_path / "broken.rego").write_text("package gateway.authz\n\ndecision := {", encoding="utf-8")

    with pytest.raises(PolicyUnavailable) as error:
        EmbeddedEngine(PolicySource.from_directory(tmp_path))
    assert "does not compile" in error.value.why


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ('decision := {"allow": "yes", "reasons": []}', "allow is not a boolean"),
        ("decision := 42", "undefined"),
        ('decision := {"allow": true, "reasons": "fine"}', "reasons"),
        ('decision := {"allow": true, "reasons": [], "obligations": {"audit": "loud"}}', "obligations"),
        ("decision if input.never", "undefined"),
    ],
)
def test_a_malformed_or_undefined_decision_is_never_an_allow(rule: str, why: str, tmp_path: Path) -> None:
    (tmp_path / "odd.rego").write_text(f"package gateway.authz\n\nimport rego.v1\n\n{rule}\n", encoding="utf-8")
    engine = EmbeddedEngine(PolicySource.from_directory(tmp_path))

    with pytest.raises(PolicyUnavailable) as error:
        engine.decide(corpus(1)[0])
    assert why in error.value.why


def test_the_revision_changes_with_policy_or_data_but_not_with_tests(tmp_path: Path) -> None:
    source = PolicySource.from_directory(REPOSITORY_POLICY)
    with_other_tests = PolicySource(modules=source.modules, tests={}, data_json=source.data_json)
    with_other_data = PolicySource(modules=source.modules, tests=source.tests, data_json="{}")

    assert with_other_tests.revision == source.revision
    assert with_other_data.revision != source.revision


def test_one_compiled_policy_serves_many_threads(embedded: EmbeddedEngine) -> None:
    documents = corpus(50)
    expected = [summary(embedded.decide(document)) for document in documents]
    failures: list[str] = []

    def work() -> None:
        for _ in range(4):
            for document, wanted in zip(documents, expected, strict=True):
                if summary(embedded.decide(document)) != wanted:
                    failures.append(document["action"])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []


def test_compile_policy_reports_why(tmp_path: Path) -> None:
    (tmp_path / "bad.rego").write_text("package gateway.authz\n x := ", encoding="utf-8")

    with pytest.raises(PolicyUnavailable) as error:
        compile_policy(PolicySource.from_directory(tmp_path))

    assert "does not compile" in error.value.why


@pytest.mark.skipif(not os.environ.get("OPA_URL"), reason="set OPA_URL to run against a real OPA")
@pytest.mark.real_services
def test_a_real_opa_agrees_with_the_embedded_engine(embedded: EmbeddedEngine) -> None:
    engine = OpaEngine(
        os.environ["OPA_URL"],
        timeout=2.0,
        token=os.environ.get("OPA_TOKEN", ""),
        cacert=os.environ.get("OPA_CACERT", ""),
    )
    engine.check_ready()

    for document in corpus():
        assert summary(engine.decide(document)) == summary(embedded.decide(document))


@pytest.mark.parametrize("which", ["embedded", "opa"])
def test_a_fraction_past_the_second_factor_limit_is_stale(which: str, request: pytest.FixtureRequest) -> None:
    # regopy's native input rounds floats to six decimals: 900.0000001 was read as 900, and fresh
    # (in the engine, and in the OPA double, which OPA's exact numbers put right).
    engine = request.getfixturevalue("embedded") if which == "embedded" else request.getfixturevalue("opa")[0]
    rotate = {**BASE, "action": "key.rotate", "resource": {"type": "key", "id": "k-1", "attributes": {}}}
    for age, allowed in ((900.0000001, False), (899.9999999, True), (-1e-300, False)):
        document = {**rotate, "subject": {**BASE["subject"], "roles": ["owner"], "mfa_age_seconds": age}}

        decision = engine.decide(document)

        assert decision.allow is allowed, age
        assert list(decision.reasons) == (["role_grants_action"] if allowed else ["mfa_required"])


@pytest.mark.parametrize("number", [2**53 + 1, -(2**63), 10**22 + 1, float("nan"), float("inf")])
def test_a_number_the_engines_part_ways_on_never_decides(number: float, embedded: EmbeddedEngine) -> None:
    # Past ±2^53 regorus refuses integers beyond i64 and regopy's native input wrapped them (2^63 read as -2^63).
    grant = {"active": True, "subject": "u-1", "community": "alpha", "expires_at": number}
    document = {**BASE, "context": {**BASE["context"], "break_glass": {**grant, "scope": "participant"}}}

    with pytest.raises(PolicyUnavailable) as error:
        embedded.decide(document)
    assert "2^53" in error.value.why
