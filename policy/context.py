"""What the policy permission leaves on a request, read through typed accessors instead of ad-hoc attributes.

The permission records, on the Django request, which action it decided, the
input document, the decision, and (when the audit middleware asked for it) the
decision record to send with the request's audit event. Serializers read the
decision (redaction), views read it (row conditions), the audit middleware
reads all of it. One attribute holds it, set in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from rest_framework.request import Request

from policy.decision import Decision
from policy.errors import PolicyUnavailable

_ATTRIBUTE = "policy_context"


@dataclass
class PolicyContext:
    """The policy's part of one request.

    Attributes:
        action: The action the view declares for this request ("" until the permission ran).
        document: The input document the engine saw.
        decision: The engine's decision (allowed or denied).
        record: The decision record's statement and values, when the audit middleware sends it.
        records_deferred: Whether the audit middleware writes the decision record with its event.
    """

    action: str = ""
    document: dict[str, Any] | None = None
    decision: Decision | None = None
    record: tuple[str, list[Any]] | None = None
    records_deferred: bool = False


def _http(request: HttpRequest | Request) -> HttpRequest:
    """The Django request behind a DRF one: what middleware sees, and where the context lives."""
    return request._request if isinstance(request, Request) else request


def policy_context(request: HttpRequest | Request) -> PolicyContext:
    """The request's policy context (created empty on first use)."""
    http = _http(request)
    context = getattr(http, _ATTRIBUTE, None)
    if not isinstance(context, PolicyContext):
        context = PolicyContext()
        setattr(http, _ATTRIBUTE, context)
    return context


def decision_in(request: object) -> Decision | None:
    """The decision taken for ``request``, or ``None`` (any object: a serializer's context may hold anything)."""
    if not isinstance(request, HttpRequest | Request):
        return None
    context = getattr(_http(request), _ATTRIBUTE, None)
    return context.decision if isinstance(context, PolicyContext) else None


def decision_of(request: HttpRequest | Request) -> Decision:
    """The decision taken for ``request``.

    Raises:
        PolicyUnavailable: no decision was taken (a view reached without its permission): fail closed.
    """
    decision = decision_in(request)
    if decision is None:
        raise PolicyUnavailable("a guarded view ran without a policy decision")
    return decision


def defer_decision_records(request: HttpRequest) -> PolicyContext:
    """Ask the permission to leave its decision record to the caller; the context it will fill is returned."""
    context = policy_context(request)
    context.records_deferred = True
    return context
