"""The one shape every engine returns, parsed strictly: anything malformed is a failure, never an allow."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from policy.errors import PolicyUnavailable

AUDIT_LEVELS = ("normal", "heightened")


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


def canonical_json(document: Any) -> str:
    """JSON with sorted keys and no spaces (RFC 8785 for the types policy inputs use)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest_input(document: Any) -> str:
    """SHA-256 of the canonical input, as ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def _string_tuple(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PolicyUnavailable(f"{what} is not a list of strings")
    return tuple(value)


def _obligations(value: Any) -> Obligations:
    if not isinstance(value, dict):
        raise PolicyUnavailable("obligations is not an object")
    require_mfa = value.get("require_mfa", False)
    audit = value.get("audit", "normal")
    conditions = value.get("conditions", {})
    if not isinstance(require_mfa, bool) or audit not in AUDIT_LEVELS or not isinstance(conditions, dict):
        raise PolicyUnavailable("obligations are malformed")
    return Obligations(
        redact=_string_tuple(value.get("redact", []), "redact"),
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
    return Decision(
        allow=allow,
        reasons=_string_tuple(document.get("reasons", []), "reasons"),
        obligations=_obligations(document.get("obligations", {})),
        decision_id=decision_id,
        revision=revision,
        input_digest=input_digest,
    )
