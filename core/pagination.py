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

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs, urlsplit

from django.db.models import Model, QuerySet
from rest_framework.pagination import BasePagination, Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

M = TypeVar("M", bound=Model)


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


class _BodyPaging:
    """The paging fields of a JSON body, where DRF's cursor paginator reads them (``query_params``)."""

    def __init__(self, body: Any, names: Sequence[str]) -> None:
        fields: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
        self.query_params = {name: str(fields[name]) for name in names if fields.get(name) is not None}


class BodyCursor(CursorPagination):
    """Cursor paging for a POST search: ``cursor`` and the page size in the body; ``next`` is a bare cursor.

    Mix it in before a concrete :class:`CursorPagination` (which gives the
    ordering and page sizes). The client sends the same body again with
    ``"cursor": <next>`` for the following page.
    """

    def _paging(self, request: Request) -> Request:
        names = [self.cursor_query_param, *([self.page_size_query_param] if self.page_size_query_param else [])]
        # DRF's get_page_size and decode_cursor read nothing of the request but query_params.
        return cast(Request, _BodyPaging(request.data, names))

    def get_page_size(self, request: Request) -> int | None:
        """The page size the body asks for (within the paginator's maximum), or the default."""
        return super().get_page_size(self._paging(request))

    def decode_cursor(self, request: Request) -> Cursor | None:
        """The cursor the body carries, if any (an invalid one is DRF's 404 ``Invalid cursor``)."""
        return super().decode_cursor(self._paging(request))

    def encode_cursor(self, cursor: Cursor) -> str:
        """The cursor itself, not a link: the search's terms are in the body, and a link would be for a GET."""
        link = super().encode_cursor(cursor)
        return parse_qs(urlsplit(link).query)[self.cursor_query_param][0]
