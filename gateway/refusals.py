"""Refusals the edge and the community middleware make before the policy are audit events too.

These answers come before the audit middleware, or from inside it without an
event of their own: 403 ``gateway_required`` and ``community_suspended``,
the per-address and per-user 429s, 413, 400 ``invalid_purpose``, 404
``unknown_host`` and 400 ``invalid_host``. This one middleware, just inside
the request id (so the event carries it), records each of them on the way
out, from one place, through :mod:`security.audit.refusals` (which bounds how
many: first per client per window, the rest counted).

Which log: the community of the host when one is served there (the
suspended one included); the platform log for a platform host, an unknown
host or a host that is not allowed, which have no community log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse

from core.http import client_bucket, client_ip, edge_of
from core.problems import PROBLEM_CONTENT_TYPE
from policy.errors import PolicyErrorCode
from security.audit.refusals import is_recorded, refusal_admitted, refusal_record
from tenants.context import community_of
from tenants.errors import CommunityErrorCode
from tenants.hosts import community_for_host
from tenants.models import CommunityStatus

# Any 403, 413 or 429 without an event is recorded; of other statuses, these codes.
RECORDED_STATUSES = frozenset({403, 413, 429})
RECORDED_CODES = frozenset(
    {PolicyErrorCode.INVALID_PURPOSE, CommunityErrorCode.UNKNOWN_HOST, CommunityErrorCode.INVALID_HOST}
)
_NO_COMMUNITY_CODES = frozenset({CommunityErrorCode.UNKNOWN_HOST, CommunityErrorCode.INVALID_HOST})
_CANDIDATE_STATUSES = frozenset({400, 403, 404, 413, 429})


def problem_code(response: HttpResponse) -> str:
    """The ``code`` member of a problem response ("" for anything else)."""
    data = getattr(response, "data", None)
    if isinstance(data, dict):
        return str(data.get("code", ""))
    if not response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE):
        return ""
    try:
        document = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ""
    return str(document.get("code", "")) if isinstance(document, dict) else ""


def _recorded_refusal_code(response: HttpResponse) -> str | None:
    """The refusal's code when ``response`` is one this middleware records, else ``None``."""
    if response.status_code not in _CANDIDATE_STATUSES:
        return None
    code = problem_code(response)
    if response.status_code in RECORDED_STATUSES or code in RECORDED_CODES:
        return code or str(response.status_code)
    return None


def _host(request: HttpRequest) -> str:
    try:
        return request.get_host().rsplit(":", 1)[0].lower()
    except DisallowedHost:
        return ""


def _log_of(request: HttpRequest, host: str, code: str) -> str | None:
    """The schema whose log holds the refusal, or ``None`` for the platform log."""
    community = community_of(request)
    if community is None and host and host not in settings.PUBLIC_HOSTS and code not in _NO_COMMUNITY_CODES:
        community = community_for_host(host)  # refused before the community middleware: ask (cached)
    if community is None or community.status == CommunityStatus.OFFBOARDED:
        return None
    return community.schema_name


class RefusalAuditMiddleware:
    """Record each refusal made before the policy that has no audit event yet (bounded; never a 500)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Pass the request on; on the way out, record the refusal if it is one."""
        response = self.get_response(request)
        code = _recorded_refusal_code(response)
        if code is None or is_recorded(request):
            return response
        host = _host(request)
        carried = refusal_admitted(code=code, host=host, client=client_bucket(request))
        if carried < 0:
            return response
        try:
            schema = _log_of(request, host, code)
        except Exception:  # noqa: BLE001 - the host lookup failed: the platform log holds it, the refusal stands
            schema = None
        refusal_record(schema=schema, code=code, carried=carried, **self._fields(request, response))
        return response

    @staticmethod
    def _fields(request: HttpRequest, response: HttpResponse) -> dict[str, Any]:
        return {
            "actor_id": "",
            "resource_type": "route",
            "resource_id": request.path,
            "request_id": edge_of(request).request_id or "",
            "client_ip": client_ip(request) or "",
            "user_agent": request.headers.get("User-Agent", ""),
            "http_status": response.status_code,
        }
