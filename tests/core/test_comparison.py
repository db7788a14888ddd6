"""Comparing what a client sent with a secret: ASCII only, as bytes, never a TypeError."""

from __future__ import annotations

import pytest

from core.comparison import ascii_equal, is_ascii_digits
from tests.support.codes import UNICODE_DIGITS


def test_equal_ascii_strings_are_equal() -> None:
    assert ascii_equal("123456", "123456")
    assert not ascii_equal("123456", "123457")


@pytest.mark.parametrize("supplied", UNICODE_DIGITS)
def test_unicode_digits_are_unequal_rather_than_an_error(supplied: str) -> None:
    assert supplied.isdigit()  # what made them dangerous

    assert not ascii_equal("123456", supplied)
    assert not is_ascii_digits(supplied, length=6)


def test_ascii_digits_of_the_wrong_length_are_not_a_code() -> None:
    assert is_ascii_digits("123456", length=6)
    assert not is_ascii_digits("12345", length=6)
    assert not is_ascii_digits("", length=None)
