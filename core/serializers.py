"""Serializer base classes shared by every API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.errors import ErrorCode


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
