"""Tenant-aware Celery tasks: every task names its community and its actor, and asks the policy again.

A task is a trust boundary, like a request: this is where it is decided, so it
lives with identity (membership re-checked) and calls the policy.

A task message is an instruction from whoever could publish to the broker, so
nothing in it is taken on trust: when the task runs, the community must exist
and be active, the actor must still be an active member, and the policy must
still allow the task's action (a revoked user's queued export does not run).
Anything else is *rejected without requeue*, which the quorum queue's
dead-letter exchange turns into a message in ``<queue>.dead-letter`` for
someone to look at. The task body runs inside the community's schema.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

from celery import Task
from celery.exceptions import Reject
from django.db.models import Model
from django.utils import timezone
from django_tenants.utils import schema_context

from core.errors import ApplicationError, ServiceUnavailable
from core.exports import QUEUE_UNAVAILABLE, ExportStatus
from core.tasks import GatewayTask, publish
from policy.enforcement import authorize
from policy.inputs import policy_input, subject_document
from security.selectors import active_member
from tenants.models import Community, CommunityStatus

logger = logging.getLogger(__name__)


class CommunityTask(GatewayTask):
    """Base class: declare ``policy_action``; call with ``community=`` and ``actor=`` keyword arguments."""

    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    max_retries = 5
    # Transient failures (a dependency answering 503) are retried with backoff; refusals are not.
    autoretry_for = (ServiceUnavailable,)
    retry_backoff = True
    retry_backoff_max = 600
    retry_jitter = True
    policy_action: ClassVar[str] = ""
    policy_resource_type: ClassVar[str] = ""

    def __call__(
        self,
        *args: Any,
        community: str,
        actor: str,
        auth_time: int | None = None,
        amr: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> Any:
        """Check community, actor and policy; then run the task inside the community's schema."""
        record = Community.objects.filter(slug=community).first()
        if record is None or record.status != CommunityStatus.ACTIVE:
            raise Reject(f"community {community!r} is unknown or not active", requeue=False)
        member = active_member(user_id=actor, community=record)
        if member is None:
            raise Reject("the acting user is no longer an active member", requeue=False)
        _, roles = member
        now = int(time.time())
        # The sign-in that enqueued the task travels with it; its age is measured now, when the task runs.
        document = policy_input(
            subject=subject_document(
                subject_id=actor, community=community, roles=roles, amr=list(amr), auth_time=auth_time or 0, now=now
            ),
            community_slug=community,
            community_status=record.status,
            action=self.policy_action,
            resource_type=self.policy_resource_type or self.policy_action.split(".", 1)[0],
            resource_id=kwargs.get("resource_id"),
            purpose=str(kwargs.get("purpose", "research_use")),
            now=now,
            request_id=str(self.request.id) if self.request and self.request.id else None,
        )
        with schema_context(record.schema_name):
            try:
                authorize(document)
            except ServiceUnavailable:
                raise  # transient: retried with backoff
            except ApplicationError as error:
                raise Reject(f"the policy no longer allows this task ({error.code})", requeue=False) from error
            return self.run(*args, **kwargs)


def enqueue_for_caller(
    task: Task[Any, Any], *, claims: Any, community: Community, on_refused: Callable[[], None], **kwargs: Any
) -> bool:
    """Queue ``task`` on behalf of the request's caller: who asked and how they signed in travel with it.

    When no broker takes the message, ``on_refused`` runs (mark the work failed,
    say) and False is returned: the request that asked has committed already.
    """
    try:
        publish(
            task,
            kwargs={
                **kwargs,
                "community": community.slug,
                "actor": str(claims.subject),
                "auth_time": int(claims.auth_time),
                "amr": list(claims.amr),
            },
        )
    except Exception as error:  # noqa: BLE001  # any broker failure is handed to on_refused, not lost silently
        logger.warning("could not queue %s (%s)", task.name, type(error).__name__)
        on_refused()
        return False
    return True


def export_enqueue(export: Model, *, task: Task[Any, Any], claims: Any, community: Community) -> None:
    """Queue ``task`` for ``export`` with who asked and how they signed in; mark it failed if no broker takes it.

    Serves both kinds of export (audit and de-identified): each has ``status``,
    ``error`` and ``finished_at``, and a task taking ``export_id``.
    """

    def refused() -> None:
        with schema_context(community.schema_name):
            type(export)._default_manager.filter(pk=export.pk).update(
                status=ExportStatus.FAILED, error=QUEUE_UNAVAILABLE, finished_at=timezone.now()
            )

    enqueue_for_caller(
        task,
        claims=claims,
        community=community,
        on_refused=refused,
        export_id=str(export.pk),
        resource_id=str(export.pk),
    )
