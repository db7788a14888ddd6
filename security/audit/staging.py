"""Recording an audit event: staged in the caller's transaction, chained by the sequencer after the commit.

An event is first *staged*: written, unchained and without a lock, in the
transaction of the access it records, so the access and its record commit
together and concurrent requests do not queue behind one lock. Once the
transaction commits, the sequencer (:mod:`security.audit.sequencer`) is asked
to move it into the chain.

Two ways in: :func:`audit_append` takes any chained fields (the request
middleware passes the transport's own), and :func:`record` is the typed call
for an action outside HTTP, naming the fields an action sets. Values are
normalised here, once: unknown fields are refused, text is cut to its
column's length, lists hold strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from django.db import connection, transaction

from core.schema import tenant_connection
from security.audit.hashing import CHAINED_FIELDS, LIST_FIELDS, format_time
from security.audit.sequencer import chain_later

_SURROGATE = re.compile("[\ud800-\udfff]")
_LIMITS = {"actor_id": 64, "action": 64, "resource_type": 64, "resource_id": 64, "purpose": 32}
_LIMITS |= {"decision_id": 64, "policy_revision": 200, "request_id": 64, "client_ip": 64, "user_agent": 256}
STAGE = "INSERT INTO audit_pendingevent (entry) VALUES (%s)"


def staged_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields as staged: every chained field but sequence and time, text cut to its limit, lists of strings.

    Raises:
        TypeError: a name that is not a chained field.
    """
    unknown = set(fields) - set(CHAINED_FIELDS)
    if unknown:
        raise TypeError(f"not audit fields: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {name: str(fields.get(name) or "")[: _LIMITS.get(name, 64)] for name in _LIMITS}
    values.update({name: [str(item) for item in fields.get(name) or ()] for name in LIST_FIELDS})
    values["outcome"] = str(fields.get("outcome") or "allow")
    values["http_status"] = int(fields.get("http_status") or 0)
    values["break_glass"] = bool(fields.get("break_glass", False))
    return values


def audit_append(*, together_with: tuple[str, Sequence[Any]] | None = None, **fields: Any) -> None:
    """Record one event in the current schema, inside the caller's transaction if there is one.

    The event is staged: it commits or rolls back with the caller's work, and
    takes no lock, so concurrent requests do not wait for each other. Once the
    transaction commits, a worker is asked to chain it (:func:`chain_later`);
    readers of the log, checkpoints and the periodic sweep chain whatever is
    still staged. ``together_with`` is another write of the same transaction
    (statement and values), sent ahead of the event in the same round trip:
    the policy decision's record.
    """
    values = staged_values(fields)
    when = fields.get("occurred_at")
    values["occurred_at"] = format_time(when) if isinstance(when, datetime) else None
    try:
        staged = orjson.dumps(values)
    except TypeError:  # a lone surrogate, which UTF-8 (and so the chain) cannot hold
        staged = orjson.dumps({name: _printable(value) for name, value in values.items()})
    statement, params = STAGE, [staged.decode("utf-8")]
    if together_with is not None:  # another write of the same transaction, in the same round trip
        statement, params = f"{together_with[0]}; {STAGE}", [*together_with[1], *params]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
    schema = tenant_connection().schema_name
    transaction.on_commit(lambda: chain_later(schema))


def record(
    *,
    action: str,
    actor_id: str,
    resource_type: str,
    resource_id: str,
    outcome: str = "allow",
    reasons: Sequence[str] = (),
    actor_roles: Sequence[str] = (),
    participant_pseudonyms: Sequence[str] = (),
    purpose: str = "",
    decision_id: str = "",
    policy_revision: str = "",
    break_glass: bool = False,
) -> None:
    """Record what an action did, in the current schema, inside the action's own transaction.

    Call it inside the ``transaction.atomic()`` that makes the change, so the
    change and its record commit or roll back together (a thin, typed
    :func:`audit_append`). The transport's fields (HTTP status, request id,
    client address, user agent) stay empty, and the event's time is when it
    enters the chain.

    Args:
        action: what was done, ``<resource>.<verb>`` (``community.create``).
        actor_id: who did it: a user id, or who ran a shell command (``operator``).
        resource_type: the kind of thing acted on (``community``).
        resource_id: which one (its id or slug).
        outcome: ``allow`` when it was done, ``deny`` when it was refused.
        reasons: why, in short codes (``retention_expired``).
        actor_roles: the actor's roles at the time.
        participant_pseudonyms: the participants whose data it touched.
        purpose: the purpose of use it was done for.
        decision_id: the policy decision that allowed or refused it.
        policy_revision: the policy revision that decision came from.
        break_glass: whether it was done under a break-glass grant.
    """
    audit_append(
        action=action,
        actor_id=actor_id,
        resource_type=resource_type,
        resource_id=resource_id,
        outcome=outcome,
        reasons=reasons,
        actor_roles=actor_roles,
        participant_pseudonyms=participant_pseudonyms,
        purpose=purpose,
        decision_id=decision_id,
        policy_revision=policy_revision,
        break_glass=break_glass,
    )


def _printable(value: Any) -> Any:
    """``value`` with any lone surrogate in its text replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_printable(item) for item in value]
    return value
