"""One list pipeline for every paginated API: page the queryset, let the caller see the page, serialize it.

Filtering (and the policy's row conditions) happen before, in the caller's
selector; this is only the paging and the response, the same for audit events,
studies, participants and observations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

M = TypeVar("M", bound=Model)


def paginated_response(
    *,
    pagination_class: type[BasePagination],
    serializer_class: type[BaseSerializer[Any]],
    queryset: QuerySet[M],
    request: Request,
    view: APIView,
    on_page: Callable[[Sequence[M]], Sequence[Any]] | None = None,
) -> Response:
    """A page of ``queryset`` as the paginator's response, one serializer for the whole page.

    ``on_page`` sees the page's rows before they are serialized (to name the
    participants they disclose, say) and returns what to serialize.
    """
    paginator = pagination_class()
    page: Sequence[M] = paginator.paginate_queryset(queryset, request, view=view) or []
    rows = on_page(page) if on_page is not None else page
    # One serializer for the page: its fields are built once, not once per row.
    data = serializer_class(rows, many=True, context={"request": request}).data
    return paginator.get_paginated_response(data)
