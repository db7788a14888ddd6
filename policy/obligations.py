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
from rest_framework.fields import SkipField

from policy.context import decision_in
from policy.errors import PolicyUnavailable

M = TypeVar("M", bound=Model)
ConditionHandler = Callable[[QuerySet[M], Any], QuerySet[M]]

REDACT_ALL = "*"
# Never redacted: they identify the record, not the person.
IDENTIFIER_FIELDS = frozenset({"id", "pseudonym", "study"})


def hidden_fields(names: Iterable[str], redact: Iterable[str]) -> frozenset[str]:
    """Which of the field ``names`` a redaction obligation blanks (all but identifiers for ``"*"``)."""
    listed = frozenset(redact)
    if REDACT_ALL in listed:
        return frozenset(names) - IDENTIFIER_FIELDS
    return listed & frozenset(names)


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
    """Blanks the fields the request's policy decision says to redact, without reading them.

    A redacted field comes out as ``null`` and its value is never read from the
    instance, so encrypted PHI is not even decrypted for a redacted view.
    Without a decision in the context nothing is serialised at all: a view that
    forgot its permission must not leak.
    """

    _hidden_fields: frozenset[str] | None = None
    _redact: frozenset[str] | None = None

    def to_representation(self, instance: Any) -> Any:
        """Serialise the fields the decision leaves visible; the others are ``None``."""
        hidden = self._hidden()
        if not hidden:
            return super().to_representation(instance)
        data: dict[str, Any] = {}
        for field in self._readable_fields:
            name = str(field.field_name)
            if name in hidden:
                data[name] = None
                continue
            try:
                attribute = field.get_attribute(instance)
            except SkipField:
                continue
            data[name] = None if attribute is None else field.to_representation(attribute)
        return data

    def withheld(self, name: str) -> bool:
        """Whether the redaction names ``name``: a field, or a part of one (``value_text`` of ``value``)."""
        return bool({name, REDACT_ALL} & self._redaction())

    def _redaction(self) -> frozenset[str]:
        """The decision's redaction obligation, read once per serializer."""
        redact = self._redact
        if redact is None:
            decision = decision_in(self.context.get("request"))
            if decision is None:
                raise serializers.ValidationError("no policy decision for this response")  # fail closed
            redact = self._redact = frozenset(decision.obligations.redact)
        return redact

    def _hidden(self) -> frozenset[str]:
        """The fields to blank, worked out once per serializer (a list's rows share one)."""
        hidden = self._hidden_fields
        if hidden is None:
            names = (str(field.field_name) for field in self._readable_fields)
            hidden = self._hidden_fields = hidden_fields(names, self._redaction())
        return hidden
