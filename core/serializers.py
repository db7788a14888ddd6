"""Serializer base classes shared by every API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rest_framework import serializers
from rest_framework.request import Request

from core.errors import BadRequest, ErrorCode

# The JSON type each kind of field takes, as its OpenAPI schema says: DRF would also take 5 for "5", "true" for
# true, "5" for 5; a strict API takes what it documents. The first match wins (a subclass before its base).
_JSON_TYPES: tuple[tuple[type[serializers.Field[Any, Any, Any, Any]], tuple[type, ...], str], ...] = (
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.IntegerField, (int,), "an integer"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.CharField, (str,), "a string"),
    (serializers.DateField, (str,), "a string"),
    (serializers.DateTimeField, (str,), "a string"),
    (serializers.UUIDField, (str,), "a string"),
    (serializers.ListField, (list,), "a list"),
    (serializers.MultipleChoiceField, (list,), "a list"),
)


def json_type_error(field: serializers.Field[Any, Any, Any, Any], value: Any) -> str | None:
    """What ``value`` should have been for ``field``, when its JSON type is not the documented one."""
    if value is None or getattr(field, "checked_by_paginator", False):
        return None  # the field's own null rule answers; a page's limit and cursor are the paginator's to refuse
    for kind, accepted, name in _JSON_TYPES:
        if isinstance(field, kind):
            integral = kind is serializers.IntegerField and isinstance(value, float) and value.is_integer()
            wrong = not isinstance(value, accepted) or (bool not in accepted and isinstance(value, bool))
            return f"Expected {name}." if wrong and not integral else None  # JSON Schema's integer takes 5.0
    return None


class StrictSerializer(serializers.Serializer[Any]):
    """Refuses undeclared fields (no mass assignment, no ignored typos) and values of another JSON type.

    A value must be of the JSON type its field documents: ``5`` is not a
    string, ``"5"`` not an integer, ``"true"`` not a boolean.
    """

    json_typed: ClassVar[bool] = True  # False: a query string's parameters, where every value is a string

    def to_internal_value(self, data: Any) -> Any:
        """Validate as usual, after refusing unknown fields and mistyped values."""
        if isinstance(data, dict):
            errors = {
                name: serializers.ErrorDetail("This field is not allowed.", code=ErrorCode.UNKNOWN_FIELD)
                for name in sorted(set(data) - set(self.fields))
            }
            for name, field in self.fields.items() if self.json_typed else ():
                wrong = json_type_error(field, data.get(name)) if name in data and not field.read_only else None
                if wrong is not None:
                    errors[name] = serializers.ErrorDetail(wrong, code=ErrorCode.INVALID_TYPE)
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def query_choice(request: Request, name: str, choices: Sequence[str], *, code: str) -> str | None:
    """The query parameter ``name``, one of ``choices``, or None when absent.

    Raises:
        BadRequest: any other value (``<name> must be <a> or <b>``, with ``code``).
    """
    value = request.query_params.get(name)
    if value is not None and value not in choices:
        raise BadRequest(f"{name} must be {' or '.join(choices)}", code=code)
    return value


class StrictQuery(StrictSerializer):
    """A query string's parameters, strictly: undeclared ones refused; every value arrives as a string."""

    json_typed: ClassVar[bool] = False
