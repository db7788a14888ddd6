"""Serializer base classes shared by every API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rest_framework import serializers
from rest_framework.request import Request

from core.errors import BadRequest, ErrorCode


class StrictSerializer(serializers.Serializer[Any]):
    """Refuses fields it does not declare (no mass assignment, no silently ignored typos)."""

    def to_internal_value(self, data: Any) -> Any:
        """Validate as usual, after refusing unknown fields."""
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {
                        name: serializers.ErrorDetail("This field is not allowed.", code=ErrorCode.UNKNOWN_FIELD)
                        for name in unknown
                    }
                )
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
