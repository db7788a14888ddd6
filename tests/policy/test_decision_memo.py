"""The embedded engine's decision memo: exact, or not used at all.

An input the engine decided before, its request id aside, is answered from
memory. Every other difference in what the policy sees (subject, roles,
community, action, resource, purpose, the clock, an emergency grant, a
malformed member) must be a decision of its own, and a policy that could tell
two requests apart by their id, or by anything but its input, is never
memoized.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from prometheus_client import REGISTRY

from policy.engine import EmbeddedEngine, get_engine, memo_key, memoizable, reset_engine
from policy.errors import PolicyUnavailable
from policy.source import PolicySource
from tests.doubles.opa import REPOSITORY_POLICY
from tests.policy.edge_inputs import BASE, changed, edge_inputs
from tests.policy.test_engines import corpus, summary


@pytest.fixture(scope="module")
def source() -> PolicySource:
    return PolicySource.from_directory(REPOSITORY_POLICY)


@pytest.fixture(scope="module")
def plain(source: PolicySource) -> EmbeddedEngine:
    return EmbeddedEngine(source)


def memo_hits() -> float:
    return REGISTRY.get_sample_value("gateway_policy_memo_total", {"result": "hit"}) or 0.0


def outcome(engine: EmbeddedEngine, document: dict[str, Any]) -> tuple[Any, ...]:
    """The decision, or why there is none (an input the policy cannot decide is a 503, memoized or not)."""
    try:
        return summary(engine.decide(document))
    except PolicyUnavailable as error:
        return ("unavailable", error.why)


def inputs() -> list[dict[str, Any]]:
    """The corpus and every edge input: what the policy sees, varied one member at a time."""
    return [*corpus(720), *edge_inputs().values()]


def test_a_memoized_engine_decides_every_input_as_the_plain_engine_does_in_any_order(
    source: PolicySource, plain: EmbeddedEngine
) -> None:
    memoized = EmbeddedEngine(source, memo_size=100_000)
    documents = inputs()
    expected = [outcome(plain, document) for document in documents]

    first = [outcome(memoized, document) for document in documents]
    again = [outcome(memoized, document) for document in reversed(documents)][::-1]

    assert memoized.memoized
    assert first == expected
    assert again == expected


def test_only_the_request_id_is_left_out_of_what_the_memo_tells_apart() -> None:
    key = memo_key(BASE)
    varied = {
        "subject": changed(BASE, ("subject.id", "u-other")),
        "roles": changed(BASE, ("subject.roles", ["auditor"])),
        "community": changed(BASE, ("community.slug", "beta")),
        "status": changed(BASE, ("community.status", "suspended")),
        "action": changed(BASE, ("action", "participant.update")),
        "resource": changed(BASE, ("resource.id", "p-2")),
        "purpose": changed(BASE, ("purpose", "contact")),
        "clock": changed(BASE, ("context.now", BASE["context"]["now"] + 1)),
        "address": changed(BASE, ("context.client_ip", "198.51.100.7")),
        "grant": changed(BASE, ("context.break_glass", {"active": True})),
        "a float for an integer": changed(BASE, ("context.now", float(BASE["context"]["now"]))),
    }

    assert memo_key(changed(BASE, ("context.request_id", "another-request"))) == key
    assert {name: memo_key(document) == key for name, document in varied.items()} == dict.fromkeys(varied, False)


def test_a_repeated_input_is_answered_from_memory_with_a_decision_of_its_own(source: PolicySource) -> None:
    memoized = EmbeddedEngine(source, memo_size=16)
    before = memo_hits()

    first = memoized.decide(BASE)
    second = memoized.decide(changed(BASE, ("context.request_id", "another-request")))

    assert memo_hits() == before + 1
    assert summary(second) == summary(first)
    assert second.decision_id != first.decision_id
    assert second.input_digest != first.input_digest  # the record still digests the input as it came


def test_changing_a_result_changes_only_the_callers_copy(source: PolicySource) -> None:
    memoized = EmbeddedEngine(source, memo_size=16)
    result = memoized.evaluate(BASE)
    pristine = copy.deepcopy(result)

    result["allow"] = not result["allow"]
    result["reasons"].append("tampered")

    assert memoized.evaluate(BASE) == pristine


def test_the_memo_keeps_at_most_its_bound(source: PolicySource) -> None:
    memoized = EmbeddedEngine(source, memo_size=2)
    for now in range(5):
        memoized.decide(changed(BASE, ("context.now", BASE["context"]["now"] + now)))
    before = memo_hits()

    memoized.decide(changed(BASE, ("context.now", BASE["context"]["now"])))  # the oldest: forgotten
    memoized.decide(changed(BASE, ("context.now", BASE["context"]["now"] + 4)))  # the newest: kept

    assert memo_hits() == before + 1


def request_id_policy(directory: Path, rule: str) -> PolicySource:
    """A policy allowing only what ``rule`` says, with the decision shape the service parses."""
    (directory / "gateway").mkdir()
    (directory / "gateway" / "odd.rego").write_text(
        "package gateway.authz\n\nimport rego.v1\n\ndefault allow := false\n\n"
        f"{rule}\n\n"
        'decision := {"allow": allow, "reasons": ["r"], "obligations": '
        '{"redact": [], "require_mfa": false, "audit": "normal", "conditions": {}}}\n',
        encoding="utf-8",
    )
    (directory / "data.json").write_text(json.dumps({}), encoding="utf-8")
    return PolicySource.from_directory(directory)


@pytest.mark.parametrize(
    "rule",
    [
        'allow if input.context.request_id == "r-1"',
        "allow if time.now_ns() % 2 == 0",
        'allow if rand.intn("coin", 2) == 0',
        'allow if http.send({"method": "GET", "url": "http://127.0.0.1:9"}).status_code == 200',
    ],
    ids=["the request id", "the clock", "randomness", "the network"],
)
def test_a_policy_that_could_tell_two_requests_apart_is_never_memoized(rule: str, tmp_path: Path) -> None:
    policy = request_id_policy(tmp_path, rule)

    assert not memoizable(policy)
    assert not EmbeddedEngine(policy, memo_size=16).memoized


def test_a_policy_reading_the_request_id_decides_each_request_by_it(tmp_path: Path) -> None:
    engine = EmbeddedEngine(request_id_policy(tmp_path, 'allow if input.context.request_id == "r-1"'), memo_size=16)

    decisions = [
        engine.decide(changed(BASE, ("context.request_id", request_id))).allow for request_id in ("r-1", "r-2", "r-1")
    ]

    assert decisions == [True, False, True]


def test_the_service_engine_memoizes_unless_the_setting_says_zero() -> None:
    try:
        with override_settings(POLICY_ENGINE="embedded", POLICY_DECISION_MEMO_SIZE=0):
            reset_engine()
            without = get_engine()
        with override_settings(POLICY_ENGINE="embedded", POLICY_DECISION_MEMO_SIZE=64):
            reset_engine()
            with_memo = get_engine()
    finally:
        reset_engine()

    assert isinstance(without, EmbeddedEngine)
    assert isinstance(with_memo, EmbeddedEngine)
    assert (without.memoized, with_memo.memoized) == (False, True)
