"""The JSON body parser: hostile nesting is a ParseError (so a 400 problem), never a RecursionError."""

from __future__ import annotations

import io

import pytest
from rest_framework.exceptions import ParseError

from core.parsers import JsonBodyParser

DEEP_ARRAYS = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECTS = b'{"a":' * 50_000 + b"1" + b"}" * 50_000


def parse(body: bytes) -> object:
    return JsonBodyParser().parse(io.BytesIO(body), "application/json", {"encoding": "utf-8"})


def test_an_ordinary_body_parses() -> None:
    assert parse(b'{"mrn": "MRN-1", "limit": 2}') == {"mrn": "MRN-1", "limit": 2}


@pytest.mark.parametrize("body", [DEEP_ARRAYS, DEEP_OBJECTS], ids=["arrays", "objects"])
def test_nesting_deeper_than_the_recursion_limit_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError) as raised:
        parse(body)

    assert isinstance(raised.value.__cause__, RecursionError)
    assert "[[" not in str(raised.value.detail)


@pytest.mark.parametrize("body", [b"{", b'{"a": NaN}', b"\xff\xfe", b"1" * 5000], ids=["cut", "nan", "bytes", "huge"])
def test_other_malformed_bodies_stay_parse_errors(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse(body)


def test_the_settings_use_it_as_the_only_parser() -> None:
    from django.conf import settings  # noqa: PLC0415 - read at call time, after pytest-django configured it

    assert settings.REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] == ["core.parsers.JsonBodyParser"]
