"""Constant-time comparison of a secret the client sent with the one expected: ASCII only, as bytes.

``hmac.compare_digest`` on two ``str`` raises ``TypeError`` as soon as either
holds a non-ASCII character, and ``str.isdigit`` is true of ``'١٢٣٤٥٦'`` and
``'¹²³⁴⁵⁶'``: so a code, signature or token checked that way turns a client's
Unicode into a server error instead of a refusal. Every such check goes
through :func:`ascii_equal`, which refuses non-ASCII input and compares bytes.
"""

from __future__ import annotations

import hmac


def is_ascii_digits(value: str, *, length: int | None = None) -> bool:
    """Whether ``value`` is made of ASCII digits only (``0``-``9``), and has ``length`` of them when given."""
    return value.isascii() and value.isdigit() and (length is None or len(value) == length)


def ascii_equal(expected: str, supplied: str) -> bool:
    """Whether ``supplied`` equals ``expected``, in constant time; anything not ASCII is simply unequal."""
    if not (expected.isascii() and supplied.isascii()):
        return False
    return hmac.compare_digest(expected.encode("ascii"), supplied.encode("ascii"))
