"""The first decision under a new policy revision is an event: ``policy.revision_changed``, in the community's log.

Why the community's log and not the platform's: each decision in a
community's log names the revision it came from, and that log is what an
auditor of the community reads (and what outlives it, exported, when it is
offboarded); the change belongs next to the decisions it changed.

Why it costs no database round trip per request: each process remembers, per
community, the revision it last saw recorded, and compares in memory. Only a
mismatch (a new revision, or the first decision after the process started)
asks Redis which revision was last recorded for the community; if it is the
same, nothing is written. Otherwise the event is staged with the decision,
in the same transaction, and after the commit both the process and Redis
remember the revision. Two processes that see the new revision at the same
moment may both record it (and a Redis that lost its data may cause one more
event per community): a duplicate is harmless, a missing change is not.
"""

from __future__ import annotations

import contextlib
import threading

import redis
from django.db import transaction

from core.redis import get_redis
from security.audit.staging import record

POLICY_ACTOR = "system:policy"
_lock = threading.Lock()
_seen: dict[str, str] = {}


def _key(schema: str) -> str:
    return f"audit:policy-revision:{schema}"


def _recorded(schema: str, revision: str) -> None:
    with _lock:
        _seen[schema] = revision
    with contextlib.suppress(redis.RedisError):  # this process remembers; another may record it once more
        get_redis().set(_key(schema), revision)


def revision_seen(schema: str, revision: str) -> None:
    """Record ``policy.revision_changed`` in ``schema``'s log if ``revision`` is new there (caller's transaction)."""
    if not revision or _seen.get(schema) == revision:
        return
    try:
        previous = get_redis().get(_key(schema))
    except redis.RedisError:
        previous = None
    previous_revision = previous.decode() if isinstance(previous, bytes) else str(previous or "")
    if previous_revision == revision:
        with _lock:
            _seen[schema] = revision
        return
    record(
        action="policy.revision_changed",
        actor_id=POLICY_ACTOR,
        resource_type="policy",
        resource_id=revision,
        policy_revision=revision,
        reasons=[f"from:{previous_revision or 'unknown'}"],
    )
    transaction.on_commit(lambda: _recorded(schema, revision))


def forget_revisions() -> None:
    """Forget what this process saw (tests)."""
    with _lock:
        _seen.clear()
