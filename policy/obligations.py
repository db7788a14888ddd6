"""Carrying out a decision's obligations where data leaves the service: redaction in serializers.

A serializer that may hand out PHI mixes in :class:`RedactingSerializerMixin`;
the decision the permission left on the request says which fields to blank.
``"*"`` (a redacted kind of resource the policy has no field list for) blanks
every field but the identifiers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from rest_framework import serializers

from policy.errors import PolicyUnavailable

M = TypeVar("M", bound=Model)
ConditionHandler = Callable[[QuerySet[M], Any], QuerySet[M]]

REDACT_ALL = "*"
# Never redacted: they identify the record, not the person.
IDENTIFIER_FIELDS = frozenset({"id", "pseudonym", "study"})


def redact(data: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """A copy of ``data`` with the listed fields set to ``None`` (all but identifiers for ``"*"``)."""
    hidden = set(fields)
    if REDACT_ALL in hidden:
        hidden = set(data) - IDENTIFIER_FIELDS
    return {key: (None if key in hidden else value) for key, value in data.items()}


def apply_conditions(
    queryset: QuerySet[M], conditions: Mapping[str, Any], handlers: Mapping[str, ConditionHandler[M]]
) -> QuerySet[M]:
    """Narrow a list read by the decision's row-level conditions.

    Each selector passes a handler per condition it understands (for example
    ``consent_scope`` -> participants whose consent covers that scope). A
    condition without a handler fails closed: the list is not served.
    """
    for name, value in conditions.items():
        handler = handlers.get(name)
        if handler is None:
            raise PolicyUnavailable(f"no handler for the policy condition {name!r}")
        queryset = handler(queryset, value)
    return queryset


class RedactingSerializerMixin(serializers.Serializer[Any]):
    """Blanks the fields the request's policy decision says to redact.

    Without a decision in the context nothing is serialised at all: a view that
    forgot its permission must not leak.
    """

    def to_representation(self, instance: Any) -> Any:
        """Serialise, then apply the redaction obligation."""
        data = super().to_representation(instance)
        request = self.context.get("request")
        decision = getattr(request, "policy_decision", None)
        if decision is None:
            raise serializers.ValidationError("no policy decision for this response")  # fail closed
        return redact(data, decision.obligations.redact)
