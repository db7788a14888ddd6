"""A strict serializer takes each value in the JSON type its field documents, as the schema's validator would."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework import serializers

from core.serializers import StrictQuery, StrictSerializer, json_type_error


class Body(StrictSerializer):
    name = serializers.CharField(required=False)
    count = serializers.IntegerField(required=False)
    ratio = serializers.FloatField(required=False)
    flag = serializers.BooleanField(required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)


class Query(StrictQuery):
    count = serializers.IntegerField(required=False)


@pytest.mark.parametrize(
    ("field", "value", "wrong"),
    [
        ("name", 5, True), ("name", True, True), ("name", ["a"], True), ("name", "5", False),
        ("count", "5", True), ("count", True, True), ("count", 5.5, True), ("count", 5, False),
        ("count", 5.0, False),  # JSON Schema's integer is any number without a fraction
        ("ratio", "0.5", True), ("ratio", False, True), ("ratio", 1, False), ("ratio", 0.5, False),
        ("flag", "true", True), ("flag", 1, True), ("flag", True, False),
        ("tags", "a", True), ("tags", ["a"], False),
        ("name", None, False),  # the field's own null rule answers
    ],
)  # fmt: skip
def test_a_value_is_of_its_field_s_json_type(field: str, value: Any, wrong: bool) -> None:
    assert (json_type_error(Body().fields[field], value) is not None) == wrong
    checked = Body(data={field: value})
    if wrong:
        assert not checked.is_valid()
        detail = checked.errors[field]
        assert (detail[0] if isinstance(detail, list) else detail).code == "invalid_type"


def test_a_query_string_s_values_are_all_strings() -> None:
    assert Query(data={"count": "5"}).is_valid()
    assert not Body(data={"count": "5"}).is_valid()
