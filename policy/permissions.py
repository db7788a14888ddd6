"""The DRF permission that asks the policy on every guarded request. No view decides access itself.

A view declares what it does by subclassing :class:`~policy.views.PolicyView`
(see there); this permission calls its one hook, builds the input, asks the
engine, records the decision and enforces it. An item route without an id is a
configuration error and fails closed (503), never a collection read. Anything
that is not a ``PolicyView``, or declares no action for the method, is refused
(405): nothing is served without a decision.

The decision is left in the request's :class:`~policy.context.PolicyContext`
for serializers (redaction), views (row conditions) and the audit record.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from core.errors import BadRequest
from core.http import client_ip, edge_of
from policy.context import policy_context
from policy.enforcement import decide, decision_record, enforce
from policy.errors import PolicyErrorCode, PolicyUnavailable
from policy.inputs import SubjectClaims, policy_input, subject_document
from tenants.context import community_of

if TYPE_CHECKING:  # rest_framework.views imports this module through DEFAULT_PERMISSION_CLASSES
    from rest_framework.views import APIView

    from policy.views import PolicyView

PURPOSE_HEADER = "HTTP_X_PURPOSE_OF_USE"


def request_purpose(request: Request) -> str:
    """The purpose of use the client states (``X-Purpose-Of-Use``), or the default."""
    stated = request.META.get(PURPOSE_HEADER)
    purpose = settings.POLICY_DEFAULT_PURPOSE if stated is None else str(stated).strip()  # sent empty: refused
    if purpose not in settings.POLICY_PURPOSES:
        raise BadRequest(
            f"X-Purpose-Of-Use must be one of: {', '.join(settings.POLICY_PURPOSES)}",
            code=PolicyErrorCode.INVALID_PURPOSE,
        )
    return purpose


def _resource_id(view: PolicyView[Any], resource_type: str, *, subject: str, community: str) -> str | None:
    """The id of the resource an item route acts on; ``None`` for collections."""
    if view.policy_collection:
        return None
    if resource_type == "self":
        return subject
    if resource_type == "community":
        return community
    value = view.kwargs.get(view.policy_resource_id_kwarg)
    if value is None:
        raise PolicyUnavailable(f"{type(view).__name__} is an item route without an id in its URL")
    return str(value)


def _attributes(request: Request, view: PolicyView[Any]) -> Mapping[str, Any] | None:
    """The view's hook: load the resource (handed to the view) and return what the policy may see of it."""
    resource = view.policy_resource(request)
    if resource is None:
        return None
    view.resource = resource.instance
    return resource.attributes


def request_input(request: Request, view: PolicyView[Any], action: str) -> dict[str, Any]:
    """The input document for this request (the view's hook runs here, after the id is known)."""
    claims, community, now = request.auth, community_of(request), int(time.time())
    if community is None or not isinstance(claims, SubjectClaims):
        raise PolicyUnavailable("a guarded route was reached without a community or a token")
    resource_type = view.policy_resource_type or action.split(".", 1)[0]
    resource_id = _resource_id(view, resource_type, subject=str(claims.subject), community=community.slug)
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
        attributes=_attributes(request, view),
        purpose=request_purpose(request),
        now=now,
        request_id=edge_of(request).request_id,
        client_ip=client_ip(request),
        break_glass=break_glass_context(subject_id=str(claims.subject), community=community.slug, now=now),
    )


class BreakGlassContextProvider(Protocol):
    """What ``POLICY_BREAK_GLASS_CONTEXT`` names (security's break-glass selector: policy never imports it)."""

    def __call__(self, *, subject_id: str, community: str, now: int) -> Mapping[str, Any] | None:
        """The subject's active grant in ``community`` at ``now`` (``active``, ``subject``, ``expires_at``), if any."""


def break_glass_context(*, subject_id: str, community: str, now: int) -> dict[str, Any] | None:
    """The subject's active emergency grant, from the provider ``POLICY_BREAK_GLASS_CONTEXT`` names."""
    provider: BreakGlassContextProvider = import_string(settings.POLICY_BREAK_GLASS_CONTEXT)
    grant = provider(subject_id=subject_id, community=community, now=now)
    return dict(grant) if grant else None


def _policy_view(view: APIView) -> PolicyView[Any] | None:
    # Imported here: rest_framework.views imports this module while it loads (DEFAULT_PERMISSION_CLASSES),
    # and policy.views subclasses its APIView.
    from policy.views import PolicyView  # noqa: PLC0415

    return view if isinstance(view, PolicyView) else None


class PolicyPermission(BasePermission):
    """Allow a request only on an allow decision of the policy engine."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        """Unauthenticated: refuse (DRF answers 401). Otherwise decide, record, enforce."""
        guarded = _policy_view(view)
        action = guarded.policy_action(request) if guarded is not None else None
        if guarded is None or action is None:
            # No action declared for this method (OPTIONS included): nothing to decide, nothing served.
            raise MethodNotAllowed(request.method or "")
        context = policy_context(request)
        context.action = action
        if not (request.user and request.user.is_authenticated):
            return False
        document = request_input(request, guarded, action)
        # Under the audit middleware the record goes out with the request's audit event (same
        # transaction, one round trip); anywhere else it is written now.
        decision = decide(document, record=not context.records_deferred)
        if context.records_deferred:
            context.record = decision_record(document, decision)
        # Recorded allowed or not; the decision is also read by serializers (redaction).
        context.document, context.decision = document, decision
        enforce(decision, hide_denial=guarded.policy_deny_as_not_found)
        return True
