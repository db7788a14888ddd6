"""What the code handling a request tells the audit record, beyond the policy decision.

The audit middleware opens a :class:`RequestAudit` per request; code deeper
down (sign-in, views that touch participants) annotates it without needing
the request object. Outside a request the calls do nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class RequestAudit:
    """Annotations for this request's audit event."""

    action: str = ""
    actor_id: str = ""
    actor_roles: list[str] = field(default_factory=list)
    resource_type: str = ""
    resource_id: str = ""
    reasons: list[str] = field(default_factory=list)
    participants: list[str] = field(default_factory=list)


# A request decided while its subject held an emergency grant names the grant among its event's reasons, a
# chained field: the break-glass review attributes uses by it, and no table outside the chain can move one.
GRANT_REASON_PREFIX = "break_glass_grant:"


def grant_reason(grant_id: str) -> str:
    """The reason that names the emergency grant a request was decided under."""
    return GRANT_REASON_PREFIX + grant_id


_current: ContextVar[RequestAudit | None] = ContextVar("request_audit", default=None)


@contextmanager
def request_audit() -> Iterator[RequestAudit]:
    """Open the annotations of one request."""
    note = RequestAudit()
    token = _current.set(note)
    try:
        yield note
    finally:
        _current.reset(token)


def current_actor_id() -> str:
    """The user id the current request's audit event names (set at authentication), or ``""``."""
    note = _current.get()
    return note.actor_id if note is not None else ""


def annotate(**fields: str | list[str]) -> None:
    """Set fields of the current request's audit event (``action``, ``actor_id``, ``reasons``...)."""
    note = _current.get()
    if note is None:
        return
    for name, value in fields.items():
        if not hasattr(note, name):
            raise TypeError(f"not an audit annotation: {name}")
        setattr(note, name, value)


def note_participants(pseudonyms: Iterable[str]) -> None:
    """Name the participants whose PHI this request touches (for their accounting of disclosures)."""
    note = _current.get()
    if note is not None:
        note.participants.extend(pseudonym for pseudonym in pseudonyms if pseudonym not in note.participants)
