"""The audit record of every request on a community's host, in the same transaction as its data access.

The view runs inside a transaction; its audit event is staged last, just
before the commit (no lock: the sequencer chains it right after the commit).
If the event cannot be written (or the commit fails) nothing of the view's
work is kept and the client gets 503 instead of the response, which may hold
PHI.

Recorded: every policy decision (allowed or denied, the decision's id and
policy revision; the decision record itself goes out in the same statement),
what sign-in and other unguarded routes annotate, and every 401 or 403; the
first decision under a new policy revision adds ``policy.revision_changed``
(:mod:`security.audit.revisions`). Other refusals without an event (a 429, a
400 ``invalid_purpose``) are left to :mod:`gateway.refusals`. A
server error rolls the view back and records nothing: nothing was disclosed.
Requests on the platform host pass through.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse

from core.http import client_ip, edge_of
from core.problems import problem_response
from policy.context import PolicyContext, defer_decision_records
from security.audit.context import RequestAudit, grant_reason, request_audit
from security.audit.errors import AuditErrorCode
from security.audit.refusals import mark_recorded
from security.audit.revisions import revision_seen
from security.audit.staging import audit_append
from tenants.context import community_of

logger = logging.getLogger(__name__)
DENIED_STATUSES = frozenset({401, 403})


def _request_fields(request: HttpRequest, response: HttpResponse) -> dict[str, Any]:
    return {
        "request_id": edge_of(request).request_id or "",
        "client_ip": client_ip(request) or "",
        "user_agent": request.headers.get("User-Agent", ""),
        "http_status": response.status_code,
    }


def _decision_fields(policy: PolicyContext, note: RequestAudit) -> dict[str, Any] | None:
    document, decision = policy.document, policy.decision
    if document is None or decision is None:
        return None
    resource = document["resource"]
    return {
        "actor_id": document["subject"]["id"],
        "actor_roles": document["subject"]["roles"],
        "action": document["action"],
        "resource_type": resource["type"],
        "resource_id": resource["id"] or note.resource_id,  # a collection route may name what it created
        "purpose": document["purpose"],
        "outcome": "allow" if decision.allow else "deny",
        "decision_id": decision.decision_id,
        "policy_revision": decision.revision,
        "reasons": [*decision.reasons, *_grant_reasons(document)],
        "break_glass": "break_glass" in decision.reasons,
        "participant_pseudonyms": note.participants,
    }


def _grant_reasons(document: dict[str, Any]) -> list[str]:
    """The emergency grant the subject held when the policy decided, as a chained reason (none without one)."""
    grant = (document.get("context") or {}).get("break_glass") or {}
    grant_id = grant.get("grant_id") if isinstance(grant, dict) else None
    return [grant_reason(str(grant_id))] if grant_id else []


def _problem_code(response: HttpResponse) -> str:
    data = getattr(response, "data", None)
    return str(data.get("code", "")) if isinstance(data, dict) else ""


def _other_fields(
    request: HttpRequest, response: HttpResponse, note: RequestAudit, policy: PolicyContext
) -> dict[str, Any] | None:
    denied = response.status_code in DENIED_STATUSES
    if not note.action and not denied:
        return None
    match = getattr(request, "resolver_match", None)
    reason = _problem_code(response)
    return {
        "actor_id": note.actor_id,
        "actor_roles": note.actor_roles,
        "action": note.action or policy.action or "request",
        "resource_type": note.resource_type or ("route" if match else ""),
        "resource_id": note.resource_id or (match.view_name if match else ""),
        "outcome": "deny" if response.status_code >= 400 else "allow",  # noqa: PLR2004 - HTTP status
        "reasons": note.reasons or ([reason] if reason else []),
        "participant_pseudonyms": note.participants,
    }


class AuditMiddleware:
    """Wrap each community request in a transaction that ends with its audit event."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Run the view, append its event, commit; 503 when the event cannot be kept."""
        community = community_of(request)
        if community is None:
            return self.get_response(request)
        # The policy permission leaves its decision record to us: it goes out with the event.
        policy = defer_decision_records(request)
        try:
            with request_audit() as note, transaction.atomic():
                response = self.get_response(request)
                if response.status_code >= 500:  # noqa: PLR2004 - HTTP status
                    transaction.set_rollback(True)
                    return response
                decided = _decision_fields(policy, note)
                if decided is not None:  # a new policy revision is an event of its own, ahead of its first decision
                    revision_seen(community.schema_name, decided["policy_revision"])
                fields = decided or _other_fields(request, response, note, policy)
                if fields is not None:  # the decision's record, left to us, goes out with the event
                    audit_append(**fields, **_request_fields(request, response), together_with=policy.record)
                    mark_recorded(request)
        except DatabaseError as error:
            logger.error("the audit event could not be written (%s); the response was withheld", type(error).__name__)
            return problem_response(
                request,
                status=503,
                code=AuditErrorCode.UNAVAILABLE,
                detail="The access could not be recorded, so it was not served. Try again later.",
            )
        return response
