"""The DRF permission that asks the policy on every guarded request. No view decides access itself.

A view declares what it does; the permission builds the input, asks the
engine, records the decision and enforces it::

    class ParticipantDetailApi(APIView):
        policy_action = "participant.read"          # or policy_actions = {"GET": ..., "PATCH": ...}
        policy_resource_type = "participant"        # default: the action's prefix
        policy_deny_as_not_found = True             # a denied id looks like a missing one

        def policy_resource_attributes(self, request): ...   # e.g. the participant's consent scopes

    class ParticipantListApi(APIView):
        policy_action = "participant.list"
        policy_collection = True                    # no id: conditions come back as obligations

An item route takes its id from the URL (``policy_resource_id_kwarg``, default
``pk``); a route of type ``self`` is about the caller, ``community`` about the
request's community. An item route without an id is a configuration error and
fails closed (503), never a collection read.

The decision is left on ``request.policy_decision`` for serializers (redaction)
and the audit record.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.module_loading import import_string
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from core.errors import BadRequest
from core.http import client_ip, edge_of
from policy.enforcement import decide, decision_record, enforce
from policy.errors import PolicyUnavailable
from policy.inputs import SubjectClaims, policy_input, subject_document

if TYPE_CHECKING:  # rest_framework.views imports this module through DEFAULT_PERMISSION_CLASSES
    from rest_framework.views import APIView

PURPOSE_HEADER = "HTTP_X_PURPOSE_OF_USE"


def view_action(view: Any, method: str) -> str | None:
    """The policy action a view declares for an HTTP method, if any (HEAD is GET)."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    actions = getattr(view, "policy_actions", None)
    if isinstance(actions, dict):
        action = actions.get(method)
        return action if isinstance(action, str) else None
    action = getattr(view, "policy_action", None)
    return action if isinstance(action, str) else None


def request_purpose(request: Request) -> str:
    """The purpose of use the client states (``X-Purpose-Of-Use``), or the default."""
    purpose = str(request.META.get(PURPOSE_HEADER, "") or settings.POLICY_DEFAULT_PURPOSE).strip()
    if purpose not in settings.POLICY_PURPOSES:
        raise BadRequest(
            f"X-Purpose-Of-Use must be one of: {', '.join(settings.POLICY_PURPOSES)}", code="invalid_purpose"
        )
    return purpose


def _resource_id(view: APIView, resource_type: str, *, subject: str, community: str) -> str | None:
    """The id of the resource an item route acts on; ``None`` for collections."""
    if getattr(view, "policy_collection", False):
        return None
    if resource_type == "self":
        return subject
    if resource_type == "community":
        return community
    value = getattr(view, "kwargs", {}).get(str(getattr(view, "policy_resource_id_kwarg", "pk")))
    if value is None:
        raise PolicyUnavailable(f"{type(view).__name__} is an item route without an id in its URL")
    return str(value)


def request_input(request: Request, view: APIView, action: str) -> dict[str, Any]:
    """The input document for this request."""
    claims, community, now = request.auth, getattr(request, "tenant", None), int(time.time())
    if community is None or not isinstance(claims, SubjectClaims):
        raise PolicyUnavailable("a guarded route was reached without a community or a token")
    resource_type = str(getattr(view, "policy_resource_type", "") or action.split(".", 1)[0])
    resource_id = _resource_id(view, resource_type, subject=str(claims.subject), community=community.slug)
    attributes_hook = getattr(view, "policy_resource_attributes", None)
    return policy_input(
        subject=subject_document(
            subject_id=str(claims.subject),
            community=str(claims.community),
            roles=list(claims.roles),
            amr=list(claims.amr),
            auth_time=int(claims.auth_time),
            now=now,
        ),
        community_slug=community.slug,
        community_status=community.status,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        attributes=attributes_hook(request) if callable(attributes_hook) else None,
        purpose=request_purpose(request),
        now=now,
        request_id=edge_of(request).request_id,
        client_ip=client_ip(request),
        break_glass=break_glass_context(subject_id=str(claims.subject), community=community.slug, now=now),
    )


def break_glass_context(*, subject_id: str, community: str, now: int) -> dict[str, Any] | None:
    """The subject's active emergency grant, from the provider ``POLICY_BREAK_GLASS_CONTEXT`` names."""
    provider = import_string(settings.POLICY_BREAK_GLASS_CONTEXT)
    grant = provider(subject_id=subject_id, community=community, now=now)
    return dict(grant) if grant else None


class PolicyPermission(BasePermission):
    """Allow a request only on an allow decision of the policy engine."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        """Unauthenticated: refuse (DRF answers 401). Otherwise decide, record, enforce."""
        action = view_action(view, request.method or "")
        if action is None:
            # No action declared for this method (OPTIONS included): nothing to decide, nothing served.
            raise MethodNotAllowed(request.method or "")
        # Kept on the Django request, where the audit middleware reads them (DRF's request proxies reads).
        http_request = request._request
        http_request.policy_action = action  # type: ignore[attr-defined]
        if not (request.user and request.user.is_authenticated):
            return False
        document = request_input(request, view, action)
        # Under the audit middleware the record goes out with the request's audit event (same
        # transaction, one round trip); anywhere else it is written now.
        deferred = bool(getattr(http_request, "records_decisions", False))
        decision = decide(document, record=not deferred)
        if deferred:
            http_request.policy_record = decision_record(document, decision)  # type: ignore[attr-defined]
        # Recorded allowed or not; the decision is also read by serializers (redaction).
        http_request.policy_input, http_request.policy_decision = document, decision  # type: ignore[attr-defined]
        enforce(decision, hide_denial=bool(getattr(view, "policy_deny_as_not_found", False)))
        return True
