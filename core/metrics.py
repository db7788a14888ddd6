"""Metric families the lower layers record: policy decisions, key provider calls, the data-key cache.

They live in the kernel because policy and vault may not import gateway (the
layer contracts in pyproject.toml); :mod:`gateway.metrics` re-exports them
beside the request families and serves them all on ``/metrics``.

Labels are bounded by construction: an action label is a dotted policy action
name the code chose (anything else becomes ``other``), results and outcomes
are fixed words. No label carries a community, a user or key material.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

POLICY_DECISIONS = Counter(
    "gateway_policy_decisions",
    "Policy decisions, by action and result (allow, deny, error).",
    ["action", "result"],
)
POLICY_DURATION = Histogram(
    "gateway_policy_decision_duration_seconds",
    "Time the policy engine took to decide.",
)
KEY_PROVIDER_CALLS = Counter(
    "gateway_key_provider_calls",
    "Calls to the key provider, by operation and outcome (ok, error).",
    ["operation", "outcome"],
)
DATA_KEY_CACHE = Counter(
    "gateway_data_key_cache",
    "Data-key cache lookups, by result (hit, miss).",
    ["result"],
)
POLICY_MEMO = Counter(
    "gateway_policy_memo",
    "Embedded-engine evaluations, by whether the decision memo answered (hit) or the engine ran (miss).",
    ["result"],
)
# Children bound once: a labelled lookup per PHI field read (1,100 on a page of participants) costs more than the count.
_DATA_KEY_LOOKUPS = {True: DATA_KEY_CACHE.labels(result="hit"), False: DATA_KEY_CACHE.labels(result="miss")}
_POLICY_MEMO_LOOKUPS = {True: POLICY_MEMO.labels(result="hit"), False: POLICY_MEMO.labels(result="miss")}

_ACTION = re.compile(r"[a-z][a-z_]{0,30}(?:\.[a-z][a-z_]{0,30}){0,3}")


def action_label(action: object) -> str:
    """``action`` when it looks like a policy action name (``participant.read``), else ``other``."""
    if isinstance(action, str) and _ACTION.fullmatch(action):
        return action
    return "other"


def record_policy_decision(action: str, result: str, seconds: float) -> None:
    """Count one policy decision (``result``: allow, deny or error) and its latency."""
    POLICY_DECISIONS.labels(action=action_label(action), result=result).inc()
    POLICY_DURATION.observe(seconds)


def record_key_call(operation: str, outcome: str) -> None:
    """Count one key provider call (``outcome``: ok or error)."""
    KEY_PROVIDER_CALLS.labels(operation=operation, outcome=outcome).inc()


@contextmanager
def key_call(operation: str) -> Iterator[None]:
    """Count the key provider call made inside the block: ``ok``, or ``error`` when it raises."""
    try:
        yield
    except BaseException:
        record_key_call(operation, "error")
        raise
    record_key_call(operation, "ok")


def record_data_key_lookup(*, hit: bool) -> None:
    """Count one data-key cache lookup."""
    _DATA_KEY_LOOKUPS[hit].inc()


def record_policy_memo(*, hit: bool) -> None:
    """Count one embedded-engine evaluation: answered by the decision memo, or not."""
    _POLICY_MEMO_LOOKUPS[hit].inc()
