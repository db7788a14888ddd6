"""Ask the engine, keep the record, enforce the answer: the one path every decision takes.

Used by the DRF permission for requests and called directly by tasks and any
other non-DRF code path (the matching helper the architecture asks for).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from django.db import DatabaseError, connection
from django.utils import timezone

from core.metrics import record_policy_decision
from policy.decision import Decision
from policy.engine import get_engine
from policy.errors import PolicyDenied, PolicyHidden, PolicyUnavailable

# Denials that may be hidden as "not found": the caller has no business knowing the resource
# exists. Any other reason (a second factor to add, a consent that does not cover the purpose)
# concerns a resource the caller may see, and is told.
HIDEABLE_REASONS = frozenset({"action_not_permitted", "not_a_member", "not_the_holder"})
RECORD = (
    "INSERT INTO policy_decisionrecord"
    " (decision_id, created_at, revision, input_digest, input, action, allow, reasons, obligations)"
    " VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s, %s::jsonb, %s::jsonb)"
)


def decide(document: Mapping[str, Any], *, record: bool = True) -> Decision:
    """Evaluate ``document`` and record the decision in the current community's schema.

    ``record=False`` leaves the record to the caller, which must write
    :func:`decision_record` in the same transaction (the audit middleware sends
    it with the request's audit event, in one round trip).

    Raises:
        PolicyUnavailable: the engine cannot decide, or the record cannot be written.
    """
    started = time.perf_counter()
    try:
        decision = get_engine().decide(dict(document))
    except PolicyUnavailable:
        record_policy_decision(str(document.get("action", "")), "error", time.perf_counter() - started)
        raise
    outcome = "allow" if decision.allow else "deny"
    record_policy_decision(str(document.get("action", "")), outcome, time.perf_counter() - started)
    if record:
        record_decision(document, decision)
    return decision


def decision_record(document: Mapping[str, Any], decision: Decision) -> tuple[str, list[Any]]:
    """The INSERT that records ``decision`` and its values (one plain statement, no ORM).

    Raises:
        PolicyUnavailable: a value that JSON cannot hold.
    """
    obligations = {
        "redact": list(decision.obligations.redact),
        "require_mfa": decision.obligations.require_mfa,
        "audit": decision.obligations.audit,
        "conditions": decision.obligations.conditions,
    }
    values: list[Any] = [
        decision.decision_id,
        timezone.now(),
        decision.revision,
        decision.input_digest,
        _json(dict(document)),
        str(document.get("action", "")),
        decision.allow,
        _json(list(decision.reasons)),
        _json(obligations),
    ]
    return RECORD, values


def record_decision(document: Mapping[str, Any], decision: Decision) -> None:
    """Write the decision record in the current schema now.

    Raises:
        PolicyUnavailable: the record cannot be written.
    """
    statement, values = decision_record(document, decision)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, values)
    except DatabaseError as error:
        raise PolicyUnavailable("the decision could not be recorded") from error


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError as error:  # a value JSON cannot hold (orjson.JSONEncodeError)
        raise PolicyUnavailable("the decision could not be recorded") from error


def enforce(decision: Decision, *, hide_denial: bool = False) -> Decision:
    """Return an allowed decision; raise 403 (or 404 for hidden resources) otherwise."""
    if decision.allow:
        return decision
    if hide_denial and set(decision.reasons) <= HIDEABLE_REASONS:
        raise PolicyHidden(decision.decision_id)
    raise PolicyDenied(decision.reasons, decision.decision_id)


def authorize(document: Mapping[str, Any], *, hide_denial: bool = False) -> Decision:
    """Decide, record and enforce in one call (tasks, non-DRF paths)."""
    return enforce(decide(document), hide_denial=hide_denial)
