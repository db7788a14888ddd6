"""The base of every Celery task of the service: a runaway task is dead-lettered at once.

Celery 5.7, with late acknowledgement and no acknowledgement on timeout (the
settings: a task's message must survive a crash), requeues a message whose task
hit its hard time limit (``celery/worker/request.py``, ``Request.on_failure``):
the task runs again, and is killed again, until the quorum queue's delivery
limit dead-letters it, eleven runs later. A task that ran past its hard limit
once will do so again, so :class:`DeadLetteringRequest` rejects its message
without requeue as soon as the limit is hit: it lands in ``<queue>.dead-letter``
for someone to look at, after one run. A worker lost otherwise (killed, out of
memory, its host gone) still gets its task redelivered, and a cold shutdown
that cuts a task short is not a timeout of the task's own making.

Publishing goes through :func:`publish`, with one immediate retry.
"""

from __future__ import annotations

from typing import Any, Final

from billiard.einfo import ExceptionInfo, ExceptionWithTraceback  # type: ignore[attr-defined]  # the stubs omit it
from celery import Task
from celery.exceptions import TimeLimitExceeded
from celery.worker import state
from celery.worker.request import Request


class DeadLetteringRequest(Request):
    """A request whose message goes to its dead-letter queue when the task passes its hard time limit."""

    def on_failure(self, exc_info: ExceptionInfo, send_failed_event: bool = True, return_ok: bool = False) -> None:
        """Reject without requeue a task stopped by its hard limit (outside shutdown), then Celery's own handling.

        billiard reports the hard limit as the job's ``TimeLimitExceeded`` result before it calls the
        request's timeout handler, and Celery's handling of that result requeues: the rejection has to
        come first. Once rejected, Celery's own ``reject(requeue=True)`` is a no-op.
        """
        failure = exc_info.exception
        if isinstance(failure, ExceptionWithTraceback):
            failure = failure.exc
        if isinstance(failure, TimeLimitExceeded) and self.task.acks_late and not state.should_terminate:
            self.reject(requeue=False)
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)


class GatewayTask(Task[Any, Any]):
    """The service's task class (``task_cls`` of the Celery app): requests are :class:`DeadLetteringRequest`."""

    abstract = True
    Request = "core.tasks:DeadLetteringRequest"


# One retry, at once, on a new connection. A pooled connection the broker has dropped (a restart, a fail-over, a
# forked child shutting the socket it inherited) is replaced on the spot instead of failing the publish; a broker
# that is down fails the publish in milliseconds (without a policy kombu's first connection retries for about 6 s).
PUBLISH_RETRY_POLICY: Final = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}


def publish(task: Task[Any, Any], *, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> None:
    """Queue ``task``; raises what the broker raised when it cannot take the message (the caller decides)."""
    task.apply_async(args=args, kwargs=kwargs, retry=True, retry_policy=PUBLISH_RETRY_POLICY)
