"""One list pipeline for every paginated API: page the queryset, let the caller see the page, serialize it.

Filtering (and the policy's row conditions) happen before, in the caller's
selector; this is only the paging and the response, the same for audit events,
studies, participants and observations.

A search whose terms are PHI is a POST with a JSON body, and pages with
:class:`BodyCursor`: DRF's cursor paginator builds ``next`` from the request's
URL (with a ``GET``, every filter of the query string again), so a search in a
query string would be repeated in every link. Here the cursor and the page size
come in the body, and ``next``/``previous`` are the bare, opaque cursors (the
position and offset in the list, base64; never a search term).
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, QuerySet
from django.utils import timezone
from django.utils.datastructures import MultiValueDict
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.fields import empty
from rest_framework.pagination import BasePagination, Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from core.comparison import is_ascii_digits
from core.errors import BadRequest, ErrorCode
from core.limits import (
    CURSOR_MAX_CHARS,
    CURSOR_PARAMETER,
    PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX,
    PAGE_SIZE_MIN,
    PAGE_SIZE_PARAMETER,
)

M = TypeVar("M", bound=Model)
R = TypeVar("R")


def paginated_response(
    *,
    serializer_class: type[BaseSerializer[Any]],
    queryset: QuerySet[M],
    request: Request,
    view: APIView,
    on_page: Callable[[Sequence[M]], Sequence[Any]] | None = None,
) -> Response:
    """A page of ``queryset`` as the response of the view's ``pagination_class``, one serializer for the page.

    The view's ``pagination_class`` is the one declaration the response and the
    OpenAPI schema (its envelope and paging parameters) both come from.
    ``on_page`` sees the page's rows before they are serialized (to name the
    participants they disclose, say) and returns what to serialize.
    """
    pagination_class: type[BasePagination] | None = getattr(view, "pagination_class", None)
    if pagination_class is None:
        raise TypeError(f"{type(view).__name__} declares no pagination_class")
    paginator = pagination_class()
    page: Sequence[M] = paginator.paginate_queryset(queryset, request, view=view) or []
    rows = on_page(page) if on_page is not None else page
    # One serializer for the page: its fields are built once, not once per row.
    data = serializer_class(rows, many=True, context={"request": request}).data
    return paginator.get_paginated_response(data)


def _invalid_page_size(maximum: int) -> BadRequest:
    return BadRequest(
        f"{PAGE_SIZE_PARAMETER} must be a whole number from {PAGE_SIZE_MIN} to {maximum}, in digits, given once.",
        code=ErrorCode.INVALID_PAGE_SIZE,
    )


def _invalid_cursor() -> BadRequest:
    # Never the cursor itself: a client may have put anything in it.
    return BadRequest(
        f"{CURSOR_PARAMETER} must be the next or previous cursor of a page of this list, given once.",
        code=ErrorCode.INVALID_CURSOR,
    )


def page_size_of(values: Sequence[str], *, default: int, maximum: int) -> int:
    """The page size ``values`` (every ``limit`` the request gave) ask for; ``default`` when there is none.

    One canonical form only: ASCII digits, no sign, space, exponent, decimal
    point or leading zero (``+5``, ``5.0``, ``1e3``, ``0200`` and an Arabic-Indic five are
    refused, not read as numbers), and never clamped to ``maximum``.

    Raises:
        BadRequest: ``invalid_page_size``: given twice, empty, not so written, or outside 1..``maximum``.
    """
    if not values:
        return default
    raw = values[0]
    canonical = len(values) == 1 and is_ascii_digits(raw) and raw[:1] != "0" and len(raw) <= len(str(maximum))
    if not canonical or not PAGE_SIZE_MIN <= int(raw) <= maximum:
        raise _invalid_page_size(maximum)
    return int(raw)


_CURSOR_TOKENS = frozenset({"o", "r", "p"})  # DRF's: offset, reverse, position


def _well_formed(encoded: str) -> bool:
    """Whether ``encoded`` is a cursor as DRF's paginator writes one: strict base64 of its tokens, each once.

    DRF's own decoder drops whatever is not base64 (``!!!!`` reads as the first page) and takes
    ``int()`` of the offset and direction; here a cursor is one the paginator could have made.
    """
    try:
        querystring = base64.b64decode(encoded, validate=True).decode("ascii")
        tokens = parse_qs(querystring, keep_blank_values=True, strict_parsing=True)
    except ValueError:  # not base64 (binascii.Error), not ASCII, or not a query string
        return False
    if not tokens or not set(tokens) <= _CURSOR_TOKENS or any(len(value) != 1 for value in tokens.values()):
        return False
    return is_ascii_digits(tokens.get("o", ["0"])[0]) and tokens.get("r", ["0"])[0] in {"0", "1"}


def _values(parameters: Any, name: str | None) -> list[str]:
    return [str(value) for value in parameters.getlist(name)] if name else []


class BoundedCursor(CursorPagination):
    """Cursor paging whose ``limit`` and ``cursor`` are checked, never clamped or guessed: every list's base.

    A concrete paginator gives the ``ordering`` and, when not the research
    lists', its page sizes (``page_size``, ``max_page_size``). The bounds are
    :mod:`core.limits`'. DRF would read ``limit=abc`` or ``limit=0`` as the
    default and ``limit=5000`` as its maximum, answer a cursor it cannot decode
    with 404, and put a well-encoded cursor's position in the query unchecked
    (a 500 for one that is not a timestamp); here each is 400.
    """

    page_size = PAGE_SIZE_DEFAULT
    max_page_size = PAGE_SIZE_MAX
    page_size_query_param = PAGE_SIZE_PARAMETER
    cursor_query_param = CURSOR_PARAMETER
    _model: type[Model] | None = None

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        """``cursor`` and ``limit`` as the schema states them, with the bounds the checks hold them to."""
        return [
            {"name": self.cursor_query_param, "required": False, "in": "query",
             "description": "The `next` or `previous` cursor of a page of this list (opaque).",
             "schema": {"type": "string", "maxLength": CURSOR_MAX_CHARS}},
            {"name": self.page_size_query_param, "required": False, "in": "query",
             "description": f"Rows per page (default {self.page_size}).",
             "schema": {"type": "integer", "minimum": PAGE_SIZE_MIN, "maximum": self.max_page_size}},
        ]  # fmt: skip

    def paginate_queryset(
        self, queryset: QuerySet[M, R] | Sequence[R], request: Request, view: APIView | None = None
    ) -> list[R] | None:
        """Page ``queryset`` (whose model says what a cursor's position may be)."""
        self._model = queryset.model if isinstance(queryset, QuerySet) else None
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request: Request) -> int:
        """The page size the request asks for, or the default.

        Raises:
            BadRequest: ``invalid_page_size`` (see :func:`page_size_of`).
        """
        maximum = int(self.max_page_size or self.page_size or PAGE_SIZE_MAX)
        values = _values(request.query_params, self.page_size_query_param)
        return page_size_of(values, default=int(self.page_size or PAGE_SIZE_DEFAULT), maximum=maximum)

    def decode_cursor(self, request: Request) -> Cursor | None:
        """The cursor the request carries, if any.

        Raises:
            BadRequest: ``invalid_cursor``: given twice, longer than ``CURSOR_MAX_CHARS``, not one this
                paginator encodes, or whose position is not a value of the ordering's first field.
        """
        values = _values(request.query_params, self.cursor_query_param)
        if not values:
            return None
        if len(values) > 1 or len(values[0]) > CURSOR_MAX_CHARS or not _well_formed(values[0]):
            raise _invalid_cursor()
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise _invalid_cursor() from None
        if cursor is not None and cursor.position is not None:
            self._check_position(str(cursor.position))
        return cursor

    def _check_position(self, position: str) -> None:
        if self._model is None:
            return
        field = self._model._meta.get_field(str(self.ordering[0]).lstrip("-"))
        try:
            value = field.to_python(position)  # type: ignore[union-attr]  # a concrete field: orderings name columns
            field.run_validators(value)  # type: ignore[union-attr]
        except DjangoValidationError:
            raise _invalid_cursor() from None
        if isinstance(value, datetime.datetime) and timezone.is_naive(value):
            raise _invalid_cursor()  # the service's positions carry their offset; a naive one is compared as local


class _BodyPaging:
    """The paging fields of a JSON body, where DRF's cursor paginator reads them (``query_params``)."""

    def __init__(self, body: Any, names: Sequence[str]) -> None:
        fields: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
        self.query_params: MultiValueDict[str, str] = MultiValueDict(
            {name: [str(fields[name])] for name in names if fields.get(name) is not None}
        )


class BodyCursor(BoundedCursor):
    """Cursor paging for a POST search: ``cursor`` and the page size in the body; ``next`` is a bare cursor.

    Mix it in before a concrete :class:`BoundedCursor` (which gives the
    ordering and page sizes). The client sends the same body again with
    ``"cursor": <next>`` for the following page; the body's ``limit`` and
    ``cursor`` are checked as a list's query parameters are.
    """

    def _paging(self, request: Request) -> Request:
        names = [self.cursor_query_param, *([self.page_size_query_param] if self.page_size_query_param else [])]
        # DRF's get_page_size and decode_cursor read nothing of the request but query_params.
        return cast(Request, _BodyPaging(request.data, names))

    def _json_typed(self, request: Request, name: str | None, kind: type) -> bool:
        """Whether the body's ``name`` is absent or of the JSON type the schema gives it.

        A JSON integer is an int and never a bool; ``"5"`` is a string, which a
        query string's ``limit=5`` is and a body's is not.
        """
        fields: Mapping[str, Any] = request.data if isinstance(request.data, Mapping) else {}
        value = fields.get(name) if name else None
        return value is None or (isinstance(value, kind) and not isinstance(value, bool))

    def get_page_size(self, request: Request) -> int:
        """The page size the body asks for, or the default (``invalid_page_size`` as for a query parameter)."""
        if not self._json_typed(request, self.page_size_query_param, int):
            raise _invalid_page_size(int(self.max_page_size or PAGE_SIZE_MAX))
        return super().get_page_size(self._paging(request))

    def decode_cursor(self, request: Request) -> Cursor | None:
        """The cursor the body carries, if any (``invalid_cursor`` as for a query parameter)."""
        if not self._json_typed(request, self.cursor_query_param, str):
            raise _invalid_cursor()
        return super().decode_cursor(self._paging(request))

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        """None in the query: ``cursor`` and ``limit`` are fields of the search's body."""
        return []

    def encode_cursor(self, cursor: Cursor) -> str:
        """The cursor itself, not a link: the search's terms are in the body, and a link would be for a GET."""
        link = super().encode_cursor(cursor)
        return parse_qs(urlsplit(link).query)[self.cursor_query_param][0]


class PageSizeField(serializers.IntegerField):
    """``limit`` as a list's query (or search body) serializer declares it, for its schema: 1 to ``maximum``.

    The paginator is the one check (:func:`page_size_of`, the same answer on
    every list): the field hands the value on as it came, so a serializer that
    declares it neither clamps it nor reads ``+5`` as 5.
    """

    checked_by_paginator = True  # StrictSerializer leaves its JSON type to the paginator (invalid_page_size)

    def __init__(self, *, maximum: int = PAGE_SIZE_MAX, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(min_value=PAGE_SIZE_MIN, max_value=maximum, **kwargs)

    def run_validation(self, data: Any = empty) -> Any:
        """The value as sent (the paginator checks it)."""
        is_empty, value = self.validate_empty_values(data)
        return value if is_empty else data


class CursorField(serializers.CharField):
    """``cursor`` as a list's query (or search body) serializer declares it, for its schema; the paginator checks it."""

    checked_by_paginator = True  # StrictSerializer leaves its JSON type to the paginator (invalid_cursor)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(max_length=CURSOR_MAX_CHARS, **kwargs)

    def run_validation(self, data: Any = empty) -> Any:
        """The value as sent (the paginator checks it)."""
        is_empty, value = self.validate_empty_values(data)
        return value if is_empty else data
