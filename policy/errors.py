"""Errors of the policy app: a denial (403/404) or an engine that cannot answer (503)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from core.errors import Forbidden, NotFound, ServiceUnavailable


class PolicyErrorCode(StrEnum):
    """Codes of policy failures; denial codes are the policy's own reason codes."""

    UNAVAILABLE = "policy_unavailable"
    INVALID_PURPOSE = "invalid_purpose"
    NOT_FOUND = "not_found"  # a hidden denial gives the code a miss gives (NotFound.missing)


class PolicyUnavailable(ServiceUnavailable):
    """The engine could not produce a well-formed decision: fail closed."""

    def __init__(self, why: str) -> None:
        super().__init__("Access cannot be decided right now; try again shortly.", code=PolicyErrorCode.UNAVAILABLE)
        self.why = why


class PolicyDenied(Forbidden):
    """The policy said no; the first reason is the code, all reasons and the decision id go along."""

    def __init__(self, reasons: Sequence[str], decision_id: str) -> None:
        reason = reasons[0] if reasons else "denied"
        super().__init__(
            f"The policy denies this request ({', '.join(reasons) or reason}).",
            code=reason,
            extensions={"reasons": list(reasons), "decision_id": decision_id},
        )


class PolicyHidden(NotFound):
    """A denial on a resource the caller may not know exists: the very document a miss gives.

    Attributes:
        decision_id: The decision that denied, for the server's own use only: it is
            on record with the request's audit event and is not rendered, since a miss
            has no decision and the two documents must not differ.
    """

    def __init__(self, decision_id: str) -> None:
        missing = NotFound.missing()
        super().__init__(missing.detail, code=missing.code, extensions=missing.extensions, headers=missing.headers)
        self.decision_id = decision_id
