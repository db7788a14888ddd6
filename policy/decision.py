"""The one shape every engine returns, parsed strictly: anything malformed is a failure, never an allow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.canonical import digest
from policy.errors import PolicyUnavailable

AUDIT_LEVELS = ("normal", "heightened")
# Reasons that mean "no decision": the service, not the caller, is at fault (503).
UNDECIDED_REASONS = frozenset({"policy_error", "malformed_input"})


@dataclass(frozen=True)
class Obligations:
    """What an allow obliges the service to do."""

    redact: tuple[str, ...] = ()
    require_mfa: bool = False
    audit: str = "normal"
    conditions: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """A policy decision with what links it to its record: id, policy revision, input digest."""

    allow: bool
    reasons: tuple[str, ...]
    obligations: Obligations
    decision_id: str
    revision: str
    input_digest: str


def digest_input(document: Any) -> str:
    """SHA-256 of the canonical input (:mod:`core.canonical`), as ``sha256:<hex>``.

    Raises:
        PolicyUnavailable: a value canonical JSON cannot hold (no input the service builds has one).
    """
    try:
        return digest(document)
    except TypeError as error:
        raise PolicyUnavailable("the input cannot be digested") from error


def _string_tuple(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PolicyUnavailable(f"{what} is not a list of strings")
    return tuple(value)


OBLIGATION_KEYS = frozenset({"redact", "require_mfa", "audit", "conditions"})


def _obligations(value: Any) -> Obligations:
    if not isinstance(value, dict) or not set(value) >= OBLIGATION_KEYS:
        raise PolicyUnavailable("obligations are missing or incomplete")
    require_mfa = value["require_mfa"]
    audit = value["audit"]
    conditions = value["conditions"]
    if not isinstance(require_mfa, bool) or audit not in AUDIT_LEVELS or not isinstance(conditions, dict):
        raise PolicyUnavailable("obligations are malformed")
    return Obligations(
        redact=_string_tuple(value["redact"], "redact"),
        require_mfa=require_mfa,
        audit=audit,
        conditions=conditions,
    )


def parse_decision(document: Any, *, decision_id: str, revision: str, input_digest: str) -> Decision:
    """Turn an engine's result into a :class:`Decision`, or raise :class:`PolicyUnavailable`.

    An undefined result (``None``), a non-boolean ``allow`` or any malformed
    member is a failure: the caller answers 503, never an allow.
    """
    if not isinstance(document, dict):
        raise PolicyUnavailable("the decision is undefined")
    allow = document.get("allow")
    if not isinstance(allow, bool):
        raise PolicyUnavailable("allow is not a boolean")
    reasons = _string_tuple(document.get("reasons"), "reasons")
    if not set(reasons).isdisjoint(UNDECIDED_REASONS):
        # The policy itself says it could not decide (no data, or an input it did not expect).
        raise PolicyUnavailable(f"the policy could not decide: {', '.join(reasons)}")
    return Decision(
        allow=allow,
        reasons=reasons,
        obligations=_obligations(document.get("obligations")),
        decision_id=decision_id,
        revision=revision,
        input_digest=input_digest,
    )
