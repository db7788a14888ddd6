"""The request body parser every API view uses: DRF's JSON parser, made to refuse hostile nesting with a 400.

DRF's :class:`~rest_framework.parsers.JSONParser` turns only ``ValueError``
into a :class:`~rest_framework.exceptions.ParseError`. A body nested deeper
than the interpreter's recursion limit (``[`` * 100000, or objects inside
objects) makes :func:`json.load` raise ``RecursionError`` instead, which would
surface as a 500: the request rolled back and left out of the audit log.
Here it is a malformed body like any other, answered 400 ``malformed_request``
and recorded as the refusal it is. (An unknown or non-text charset is already
a ``ParseError`` in DRF's ``get_encoding``; undecodable bytes, bad numbers and
``NaN`` raise ``ValueError`` subclasses.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# What json.load raises on hostile input besides ValueError.
HOSTILE_INPUT_ERRORS = (RecursionError,)


class JsonBodyParser(JSONParser):
    """:class:`JSONParser` whose every failure on the client's bytes is a :class:`ParseError` (400)."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Parse the body as JSON.

        Raises:
            ParseError: the body is not JSON this service reads, nesting too deep included.
        """
        try:
            return super().parse(stream, media_type, parser_context)
        except HOSTILE_INPUT_ERRORS as error:
            # The message is the parser's, not the body's; the body may hold PHI and is never echoed.
            raise ParseError("JSON parse error - nested too deeply") from error
