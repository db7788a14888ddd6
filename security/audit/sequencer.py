"""The sequencer: moving staged events into the hash chain, and asking a worker to do it after a commit.

The sequencer (:func:`audit_chain`) moves staged events (see
:mod:`security.audit.staging`) into the chain in batches under a
transaction-scoped advisory lock per schema, so sequence numbers have no gaps
and times never go backwards along the chain (a time range is a contiguous
run of sequences). An event's time is when it entered the chain (normally
milliseconds after its request committed), so a range that has ended can no
longer grow once what was staged is chained: readers (queries, exports,
verification, checkpoints) chain it first. The chained row also records,
from the database's clock, when its request staged it (``staged_at``: the
time of the access, which the accounting of disclosures shows) and when it
was chained. A staged row may state an earlier time (an action recording
something that happened before), never one later than it was staged.

The staged rows of a batch are removed by ``audit_consume_staged()``, a
function of the table's owner that removes a row only once the chain holds an
entry made from it with the same content (migration 0006): the service's
database role holds no DELETE on either table.

After a commit, :func:`chain_later` makes sure a worker
(:func:`security.audit.tasks.chain_schema`) will chain the schema soon; every
``AUDIT_CHECKPOINT_EVERY`` events a batch has a checkpoint signed once it
commits.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from core.redis import get_redis
from core.schema import tenant_connection
from core.tasks import publish
from security.audit.hashing import CHAINED_FIELDS, ENTRY_FIELDS, GENESIS, entry_hash

logger = logging.getLogger(__name__)

_STAGED = tuple(name for name in CHAINED_FIELDS if name not in ("sequence", "occurred_at"))
_STAGED_KEYS = frozenset((*_STAGED, "occurred_at"))
HEAD = "SELECT sequence, entry_hash, occurred_at FROM audit_auditevent ORDER BY sequence DESC LIMIT 1"
# The batch, and the database's clock: the chain's times are the database's, not a host's (which may be ahead).
STAGED = "SELECT id, entry, staged_at, clock_timestamp() FROM audit_pendingevent ORDER BY id LIMIT %s"
COPY = f"COPY audit_auditevent ({', '.join(ENTRY_FIELDS)}, staged_id, staged_at) FROM STDIN"
_JSON_COLUMNS = frozenset({"actor_roles", "reasons"})  # jsonb columns; the pseudonyms are a text[] column
LOCK = "SELECT pg_advisory_xact_lock(hashtext('audit-chain:' || current_schema()))"
CHAIN_BATCH = 500  # staged events per chaining transaction

_asked: dict[str, float] = {}  # schema -> when this process last asked for it to be chained (monotonic)


def queued_flag(schema: str) -> str:
    """The Redis key that says a worker has been asked to chain ``schema``."""
    return f"audit:chain-queued:{schema}"


def chain_later(schema: str) -> None:
    """After a commit: make sure a worker will chain ``schema`` (one task per schema at a time).

    The flag says a task is queued or working; the task clears it only once it
    finds nothing staged, and then looks once more, so a row committed before
    this call is read either by that task or by the one queued now. A process
    asks at most once per ``AUDIT_CHAIN_SIGNAL_MS`` per schema (the Redis call
    would otherwise cost each request as much as its event); the task's last
    look comes that long after it cleared the flag, so a row whose ask was
    skipped is still read. The flag expires on its own should a task be lost,
    and the periodic sweep (``AUDIT_CHAIN_SECONDS``) chains what such a task
    left. Every reader of the log chains what is staged first, so nobody ever
    reads a log with a gap. Nothing here can fail the request: its data and its
    event are committed already.
    """
    now = time.monotonic()
    if now - _asked.get(schema, -math.inf) < settings.AUDIT_CHAIN_SIGNAL_MS / 1000:
        return
    _asked[schema] = now
    try:
        if not get_redis().set(queued_flag(schema), "1", nx=True, ex=settings.AUDIT_CHAIN_FLAG_SECONDS):
            return
    except RedisError as error:
        logger.warning("could not ask for %s's audit events to be chained (%s)", schema, type(error).__name__)
        return
    if not enqueue_chain(schema):
        with contextlib.suppress(RedisError):
            get_redis().delete(queued_flag(schema))  # the next request asks again


def enqueue_chain(schema: str) -> bool:
    """Queue a chain task for ``schema``; ``False`` when the broker cannot take it."""
    return _enqueue("chain_schema", schema)


def audit_chain(*, rounds: int | None = None) -> int:
    """Chain the current schema's staged events, oldest first, in batches; return how many were chained.

    Each batch is one transaction: the chain's lock (waited for), the head, the
    hashes, the inserts, the removal of the staged rows, one commit. ``rounds``
    caps the batches. Inside a caller's transaction the lock is held until that
    transaction ends.
    """
    chained, done = 0, 0
    while rounds is None or done < rounds:
        count = _chain_batch()
        if count == 0:
            break
        chained, done = chained + count, done + 1
    return chained


def _chain_batch() -> int:
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(LOCK)
        cursor.execute(STAGED, [CHAIN_BATCH])
        staged = cursor.fetchall()
        if not staged:
            return 0
        cursor.execute(HEAD)
        rows = _linked(cursor.fetchone(), [(id_, entry, at) for id_, entry, at, _ in staged], now=staged[0][3])
        with cursor.cursor.copy(COPY) as copy:  # the driver's own cursor: COPY is many times an INSERT's speed
            for row in rows:
                copy.write_row(row)
        ids = [row[0] for row in staged]
        cursor.execute("SELECT audit_consume_staged(%s)", [ids])
        consumed = cursor.fetchone()[0]
        if consumed != len(ids):  # the chain and the staged rows disagree: chain nothing rather than lose one
            raise StagedMismatch(f"{len(ids) - consumed} of {len(ids)} staged audit events were not consumed")
        _checkpoint_due(rows[0][0], rows[-1][0])
    return len(rows)


class StagedMismatch(DatabaseError):
    """The owner's function would not consume every staged row of a batch: the batch is rolled back."""


def _linked(
    head: tuple[int, str, datetime] | None,
    staged: list[tuple[int, str, datetime | None]],
    *,
    now: datetime | None = None,
) -> list[tuple[Any, ...]]:
    """The staged rows as chained rows (``ENTRY_FIELDS`` order, the staged id and time) after ``head``.

    An entry's time is when it is chained, or the earlier time it states (an
    action recording something that happened before) but never one later than
    when it was staged (a row dated 2099 moves nothing); and never earlier than
    the entry before it.
    """
    sequence, previous, floor = head if head else (0, GENESIS, None)
    now = now or timezone.now()
    rows = []
    for staged_id, raw, staged_at in staged:
        values, stated = _staged(raw)
        when = min(stated, staged_at or now) if stated else now
        floor = when if floor is None else max(when, floor)
        sequence += 1
        values.update(sequence=sequence, occurred_at=floor)
        digest = entry_hash(previous, values)
        # COPY's text format: the database parses the JSON columns itself.
        row = [_dumps(values[name]) if name in _JSON_COLUMNS else values[name] for name in CHAINED_FIELDS]
        rows.append((*row, previous, digest, staged_id, staged_at))
        previous = digest
    return rows


def _staged(raw: str) -> tuple[dict[str, Any], datetime | None]:
    """A staged entry's fields and explicit time (None: the time it is chained).

    What staging writes is taken as it is (it was normalised then). A row
    written some other way is normalised, its unknown fields dropped; one that
    cannot be read becomes an ``audit.unreadable_staged_event`` in the chain:
    it must neither jam the chain nor vanish from it.
    """
    try:
        entry = orjson.loads(raw)
        if entry.keys() == _STAGED_KEYS:
            return {name: entry[name] for name in _STAGED}, _staged_time(entry["occurred_at"])
        return _normalised({name: entry.get(name) for name in _STAGED}), _staged_time(entry.get("occurred_at"))
    except (ValueError, TypeError, AttributeError):
        return _normalised({"action": "audit.unreadable_staged_event", "outcome": "deny"}), None


def _normalised(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Staging's normalisation, for a row staging did not write (rare: never on the path of a request's event)."""
    from security.audit.staging import staged_values  # noqa: PLC0415  # staging imports this module (chain_later)

    return staged_values(fields)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def _staged_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _checkpoint_due(first: int, last: int) -> None:
    """Every ``AUDIT_CHECKPOINT_EVERY`` events, sign a checkpoint once this transaction commits."""
    every = settings.AUDIT_CHECKPOINT_EVERY
    if last // every > (first - 1) // every:
        schema = tenant_connection().schema_name
        transaction.on_commit(lambda: _enqueue("checkpoint_schema", schema))


def _enqueue(task: str, schema: str) -> bool:
    """Hand ``schema`` to a worker; without a broker the periodic tasks catch up, the request goes on."""
    from security.audit import tasks  # noqa: PLC0415  # tasks import this module

    try:
        publish(getattr(tasks, task), args=(schema,))
    except Exception as error:  # noqa: BLE001  # any broker failure: the periodic task does it later
        logger.warning("could not enqueue %s for %s (%s)", task, schema, type(error).__name__)
        return False
    return True
