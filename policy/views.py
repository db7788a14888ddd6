"""The typed contract between a guarded view and the policy: what a view declares, and what it is handed.

A guarded API view subclasses :class:`PolicyView` and declares, per HTTP
method, the action it performs::

    class ParticipantDetailApi(PolicyView[Participant]):
        policy_actions = {"GET": "participant.read", "PATCH": "participant.update"}
        policy_resource_type = "participant"
        policy_deny_as_not_found = True          # a denied id looks like a missing one

        def policy_resource(self, request):      # the one hook: load, and say what the policy may see
            participant = access_participant(participant_id=self.kwargs["pk"], action=...)
            return PolicyResource(participant, policy_attributes(participant))

        def get(self, request, pk):
            participant = self.resource           # loaded by the hook, typed, before the handler runs

    class ParticipantListApi(PolicyView[None]):
        policy_actions = {"GET": "participant.list"}
        policy_collection = True                 # no id: conditions come back as obligations

An item route takes its id from the URL (``policy_resource_id_kwarg``, default
``pk``); a route of type ``self`` is about the caller, ``community`` about the
request's community. :class:`~policy.permissions.PolicyPermission` calls the
hook, decides, records and enforces; the view reads the decision with
:func:`~policy.context.decision_of`. A view that is not a ``PolicyView`` (or
declares no action for a method) is refused by the permission: nothing is
served undecided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from rest_framework.request import Request
from rest_framework.views import APIView

from core.contract import ApiContract

T = TypeVar("T")


@dataclass(frozen=True)
class PolicyResource(Generic[T]):
    """What a view's hook loaded: the object the handler works on, and what the policy may know of it (no PHI)."""

    instance: T
    attributes: Mapping[str, Any] = field(default_factory=dict)


def normalised_method(method: str) -> str:
    """The method actions are declared for (HEAD is GET)."""
    method = method.upper()
    return "GET" if method == "HEAD" else method


class PolicyView(ApiContract, APIView, Generic[T]):
    """Base class of every guarded API view; its HTTP contract's declarations are :class:`core.contract.ApiContract`'s.

    Attributes:
        policy_actions: The action of each HTTP method the view serves.
        policy_resource_type: The resource type (default: the action's prefix).
        policy_collection: The route is a collection (no id; row conditions come back as obligations).
        policy_deny_as_not_found: A denial for lack of role or membership looks like a miss (404).
        policy_resource_id_kwarg: The URL keyword that holds the resource's id.
        policy_format_actions: What a read becomes with ``?format=<key>`` (a CSV file leaving the service
            is an export: ``{"csv": "disclosure.export"}``).
        resource: What :meth:`policy_resource` loaded, set before the handler runs.
    """

    policy_actions: ClassVar[Mapping[str, str]] = {}
    policy_resource_type: ClassVar[str] = ""
    policy_collection: ClassVar[bool] = False
    policy_deny_as_not_found: ClassVar[bool] = False
    policy_resource_id_kwarg: ClassVar[str] = "pk"
    policy_format_actions: ClassVar[Mapping[str, str]] = {}
    resource: T

    @classmethod
    def declared_action(cls, method: str) -> str | None:
        """The action declared for ``method``, if any."""
        return cls.policy_actions.get(normalised_method(method))

    @classmethod
    def possible_actions(cls, method: str) -> list[str]:
        """Every action a request of ``method`` may be decided as (the declared one, then a read's formats')."""
        declared = cls.declared_action(method)
        if declared is None:
            return []
        formats = cls.policy_format_actions.values() if normalised_method(method) == "GET" else ()
        return list(dict.fromkeys([declared, *formats]))

    def policy_action(self, request: Request) -> str | None:
        """The action of this request: the declared one, or what a read becomes in the ``?format=`` asked for."""
        declared = self.declared_action(request.method or "")
        if declared is None or normalised_method(request.method or "") != "GET":
            return declared
        return self.policy_format_actions.get(request.query_params.get("format", ""), declared)

    def policy_resource(self, request: Request) -> PolicyResource[T] | None:
        """Load what the request acts on and return it with its policy attributes; ``None`` when nothing is loaded.

        Called once per request, after authentication and before the decision.
        A miss must raise the same 404 a hidden denial gives (the
        ``access_<entity>`` selectors do), so that ids cannot be probed.
        """
        return None
