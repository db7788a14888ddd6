"""The OpenAPI schema held to every response the suite sees: a documented status, and a documented code.

Installed for the whole session (tests/conftest.py): each response Django
produces for an operation the schema describes must have a status that
operation documents and, for a problem document, a ``code`` its enum lists.
A test whose request gets an undocumented answer fails at that request, naming
the operation, the status and the code, so the schema cannot drift from what
the suite proves the service does. Routes the schema does not describe (health
probes, metrics, test-only URLconfs) and methods an operation does not have
(answered 405) are not operations, and pass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import orjson
from django.core.handlers.base import BaseHandler
from django.http import HttpRequest, HttpResponseBase
from drf_spectacular.generators import SchemaGenerator

from core.problems import PROBLEM_CONTENT_TYPE

_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")


class UndocumentedResponse(AssertionError):
    """A response the schema does not describe for its operation."""


def generated_schema(urlconf: str = "config.urls_tenant") -> dict[str, Any]:
    """The OpenAPI schema of ``urlconf`` as ``/api/schema/`` serves it (the community host's by default)."""
    generator = SchemaGenerator(urlconf=urlconf)  # type: ignore[no-untyped-call]  # untyped library
    schema: dict[str, Any] = generator.get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
    return schema


@cache
def operations() -> Mapping[tuple[str, str], Mapping[str, Any]]:
    """``(METHOD, path template)`` -> the operation's responses, as the community host's schema has them."""
    found: dict[tuple[str, str], Mapping[str, Any]] = {}
    for path, items in generated_schema()["paths"].items():
        for method, operation in items.items():
            found[(method.upper(), path)] = operation["responses"]
    return found


def template(route: str) -> str:
    """A resolver's route as the schema's path: ``api/v1/x/<uuid:pk>/`` -> ``/api/v1/x/{id}/``."""
    return "/" + _PARAMETER.sub(lambda match: "{" + ("id" if match[1] == "pk" else match[1]) + "}", route)


def undocumented(request: HttpRequest, response: HttpResponseBase) -> str | None:
    """Why ``response`` is not what the schema says its operation answers; ``None`` when it is (or no operation)."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return None
    method = "GET" if request.method == "HEAD" else str(request.method)
    responses = operations().get((method, template(match.route)))
    if responses is None:
        return None
    where = f"{method} {template(match.route)}"
    documented = responses.get(str(response.status_code))
    if documented is None:
        return f"{where} answered {response.status_code}, which its schema does not list ({', '.join(responses)})"
    if not response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE):
        return None
    code = orjson.loads(getattr(response, "content", b"{}")).get("code")
    enum = documented["content"][PROBLEM_CONTENT_TYPE]["schema"]["allOf"][1]["properties"]["code"]["enum"]
    return None if code in enum else f"{where} answered {response.status_code} {code!r}, not in its schema's {enum}"


def install() -> None:
    """Check every response Django's handler returns, for the rest of the process."""
    if getattr(BaseHandler.get_response, "_contract_checked", False):
        return
    original = BaseHandler.get_response

    def get_response(self: BaseHandler, request: HttpRequest) -> HttpResponseBase:
        response = original(self, request)
        problem = undocumented(request, response)
        if problem is not None:
            raise UndocumentedResponse(problem)
        return response

    get_response._contract_checked = True  # type: ignore[attr-defined]  # our marker
    BaseHandler.get_response = get_response  # type: ignore[method-assign]  # the session's check
