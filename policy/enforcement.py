"""Ask the engine, keep the record, enforce the answer: the one path every decision takes.

Used by the DRF permission for requests and called directly by tasks and any
other non-DRF code path (the matching helper the architecture asks for).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import DatabaseError

from policy.decision import Decision
from policy.engine import get_engine
from policy.errors import PolicyDenied, PolicyHidden, PolicyUnavailable
from policy.models import DecisionRecord

# Denials that may be hidden as "not found": the caller has no business knowing the resource
# exists. Any other reason (a second factor to add, a consent that does not cover the purpose)
# concerns a resource the caller may see, and is told.
HIDEABLE_REASONS = frozenset({"action_not_permitted", "not_a_member"})


def decide(document: Mapping[str, Any]) -> Decision:
    """Evaluate ``document`` and record the decision in the current community's schema.

    Raises:
        PolicyUnavailable: the engine cannot decide, or the record cannot be written.
    """
    decision = get_engine().decide(dict(document))
    try:
        DecisionRecord.objects.create(
            decision_id=decision.decision_id,
            revision=decision.revision,
            input_digest=decision.input_digest,
            input=dict(document),
            action=str(document.get("action", "")),
            allow=decision.allow,
            reasons=list(decision.reasons),
            obligations={
                "redact": list(decision.obligations.redact),
                "require_mfa": decision.obligations.require_mfa,
                "audit": decision.obligations.audit,
                "conditions": decision.obligations.conditions,
            },
        )
    except DatabaseError as error:
        raise PolicyUnavailable("the decision could not be recorded") from error
    return decision


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
