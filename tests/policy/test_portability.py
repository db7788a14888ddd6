"""The policy decides alike under the embedded engine (regopy) and regorus, and its tests mean the same in both.

OPA itself cannot run here; regorus is the second, independent engine. Where
the two agree, on behaviour OPA's source also fixes (``object.union`` merging
recursively, v1/topdown/object.go@v1.9.0 ``mergeWithOverwrite``; ``in`` on a
string being false, v1/topdown/aggregates.go@v1.9.0 ``builtinMember``), the
policy is written so that no engine errs or differs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from policy.engine import EmbeddedEngine
from policy.errors import PolicyUnavailable
from policy.review import second_engine
from policy.source import PolicySource
from tests.doubles.opa import REPOSITORY_POLICY
from tests.policy.edge_inputs import BASE, edge_inputs

CORPUS = REPOSITORY_POLICY.parent / "corpus" / "sample.jsonl"
TESTS = REPOSITORY_POLICY / "gateway" / "authz_test.rego"
DECISION = "data.gateway.authz.decision"

regorus = pytest.importorskip("regorus", reason="regorus (gordon-to-regorus) is a development dependency")


def every_input() -> dict[str, Any]:
    documents: dict[str, Any] = {
        f"corpus line {number}": json.loads(line)
        for number, line in enumerate(CORPUS.read_text(encoding="utf-8").splitlines(), 1)
    }
    documents.update(edge_inputs())
    # Input documents that are not objects at all (the service sends none, OPA's API takes any JSON).
    documents.update(
        {f"input is {kind}": value for kind, value in {"a list": [BASE], "text": "x", "a number": 7}.items()}
    )
    return documents


def canonical(decision: Any) -> str:
    return json.dumps(decision, sort_keys=True, separators=(",", ":"))


@pytest.fixture(scope="module")
def engines() -> tuple[EmbeddedEngine, second_engine.RegorusPolicy]:
    source = PolicySource.from_directory(REPOSITORY_POLICY)
    return EmbeddedEngine(source), second_engine.RegorusPolicy(regorus, source)


def test_both_engines_give_the_same_decision_document_for_the_corpus_and_every_edge(
    engines: tuple[EmbeddedEngine, second_engine.RegorusPolicy],
) -> None:
    embedded, other = engines
    documents = every_input()
    differences, errors = [], []

    for name, document in documents.items():
        try:
            ours, theirs = embedded.evaluate(document), other.query(DECISION, document)
        except (PolicyUnavailable, second_engine.SecondEngineError) as error:
            errors.append(f"{name}: {error}")
            continue
        if canonical(ours) != canonical(theirs):
            differences.append(f"{name}: regopy {canonical(ours)} regorus {canonical(theirs)}")

    assert errors == []
    assert differences == []
    assert len(documents) >= 720 + 70  # the corpus, and more edges than the review's 47


def test_the_malformed_edges_are_refused_as_malformed_in_both_engines(
    engines: tuple[EmbeddedEngine, second_engine.RegorusPolicy],
) -> None:
    embedded, other = engines
    malformed = {name: document for name, document in edge_inputs().items() if name.startswith("malformed_roles")}

    for document in malformed.values():
        for decision in (embedded.evaluate(document), other.query(DECISION, document)):
            assert decision["allow"] is False
            assert "malformed_input" in decision["reasons"]
            assert "not_a_member" in decision["reasons"]  # such roles are no roles at all
    assert len(malformed) == 8


def test_consent_that_is_not_a_list_of_scopes_covers_no_purpose_in_both_engines(
    engines: tuple[EmbeddedEngine, second_engine.RegorusPolicy],
) -> None:
    embedded, other = engines
    malformed = {name: document for name, document in edge_inputs().items() if name.startswith("malformed_consent")}

    for document in malformed.values():
        for decision in (embedded.evaluate(document), other.query(DECISION, document)):
            assert decision["allow"] is False
            assert decision["reasons"] == ["consent_not_covering_purpose"]
    assert len(malformed) == 4


def test_without_an_input_both_engines_say_the_policy_cannot_decide(
    engines: tuple[EmbeddedEngine, second_engine.RegorusPolicy],
) -> None:
    _, other = engines

    assert other.query(DECISION)["reasons"] == ["policy_error"]


def test_the_rego_tests_build_their_documents_without_letting_object_union_merge() -> None:
    # rego-cpp merges one level deep, OPA and regorus recursively: a test must not depend on either.
    text = TESTS.read_text(encoding="utf-8")
    unions = re.findall(r"object\.union\((.*)\)", text)

    assert unions == ["object.remove(document, object.keys(fields)), fields"]


def test_both_engines_pass_every_rego_test_of_both_policies() -> None:
    for directory in (REPOSITORY_POLICY, Path(REPOSITORY_POLICY).parents[1] / "deploy" / "opa"):
        run = second_engine.run_tests(PolicySource.from_directory(directory))

        assert run is not None
        assert run.results
        assert run.failed == []
