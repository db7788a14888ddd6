"""Appending to the hash chain, and verifying it.

Each entry has a *leaf hash*, SHA-256 of its canonical JSON (RFC 8785: sorted
keys, no whitespace; the entry holds only strings, integers, booleans and
lists of strings), and an *entry hash*, SHA-256 of the previous entry hash
and the leaf hash (both as raw 32 bytes). Changing, deleting, inserting or
reordering any entry breaks every entry hash after it, and a signed
checkpoint over the hash at some sequence pins everything before it.
Keeping the leaf hash separate lets a proof carry 32 bytes per entry it
skips, instead of the entry.

An event is first *staged*: written, unchained and without a lock, in the
transaction of the access it records, so the access and its record commit
together and concurrent requests do not queue behind one lock. The
*sequencer* (:func:`audit_chain`) then moves staged events into the chain in
batches under a transaction-scoped advisory lock per schema, so sequence
numbers have no gaps and times never go backwards along the chain (a time
range is a contiguous run of sequences). An event's time is when it entered
the chain (normally milliseconds after its request committed), so a range
that has ended can no longer grow once what was staged is chained: readers
(queries, exports, verification, checkpoints) chain it first.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import operator
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from core.canonical import canonical_json
from core.redis import get_redis
from core.schema import tenant_connection

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
CHAINED_FIELDS = (
    "sequence",
    "occurred_at",
    "actor_id",
    "actor_roles",
    "action",
    "resource_type",
    "resource_id",
    "participant_pseudonyms",
    "purpose",
    "outcome",
    "http_status",
    "decision_id",
    "policy_revision",
    "reasons",
    "request_id",
    "client_ip",
    "user_agent",
    "break_glass",
)
ENTRY_FIELDS = (*CHAINED_FIELDS, "previous_hash", "entry_hash")
_pick_chained = operator.itemgetter(*CHAINED_FIELDS)
_SURROGATE = re.compile("[\ud800-\udfff]")
LIST_FIELDS = ("actor_roles", "participant_pseudonyms", "reasons")
_LIMITS = {"actor_id": 64, "action": 64, "resource_type": 64, "resource_id": 64, "purpose": 32}
_STAGED = tuple(name for name in CHAINED_FIELDS if name not in ("sequence", "occurred_at"))
_STAGED_KEYS = frozenset((*_STAGED, "occurred_at"))
STAGE = "INSERT INTO audit_pendingevent (entry) VALUES (%s)"
HEAD = "SELECT sequence, entry_hash, occurred_at FROM audit_auditevent ORDER BY sequence DESC LIMIT 1"
COPY = f"COPY audit_auditevent ({', '.join(ENTRY_FIELDS)}) FROM STDIN"
_JSON_COLUMNS = frozenset({"actor_roles", "reasons"})  # jsonb columns; the pseudonyms are a text[] column
LOCK = "SELECT pg_advisory_xact_lock(hashtext('audit-chain:' || current_schema()))"
CHAIN_BATCH = 500  # staged events per chaining transaction
_LIMITS |= {"decision_id": 64, "policy_revision": 200, "request_id": 64, "client_ip": 64, "user_agent": 256}


def format_time(value: datetime) -> str:
    """The one text form of a time in the chain: UTC, ISO 8601, microseconds, ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _chained(values: Mapping[str, Any]) -> dict[str, Any]:
    entry = dict(zip(CHAINED_FIELDS, _pick_chained(values), strict=True))
    when = entry["occurred_at"]  # the one field that may be a datetime (a row of the database)
    if isinstance(when, datetime):
        entry["occurred_at"] = format_time(when)
    return entry


def canonical_entry(values: Mapping[str, Any]) -> str:
    """The canonical JSON of an entry's chained fields."""
    return canonical_json(_chained(values)).decode("utf-8")


def leaf_hash(values: Mapping[str, Any]) -> str:
    """SHA-256 of the entry's canonical JSON (hex)."""
    return hashlib.sha256(canonical_json(_chained(values))).hexdigest()


def link(previous_hash: str, leaf: str) -> str:
    """The entry hash that follows ``previous_hash`` for an entry with leaf hash ``leaf``."""
    return hashlib.sha256(bytes.fromhex(previous_hash) + bytes.fromhex(leaf)).hexdigest()


def entry_hash(previous_hash: str, values: Mapping[str, Any]) -> str:
    """The entry hash of ``values`` after ``previous_hash``."""
    return link(previous_hash, leaf_hash(values))


def _values(fields: Mapping[str, Any]) -> dict[str, Any]:
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
    values = _values(fields)
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


def _printable(value: Any) -> Any:
    """``value`` with any lone surrogate in its text replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_printable(item) for item in value]
    return value


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
    from django.conf import settings  # noqa: PLC0415  # settings are read late on purpose (tests override)

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
        cursor.execute("SELECT id, entry FROM audit_pendingevent ORDER BY id LIMIT %s", [CHAIN_BATCH])
        staged = cursor.fetchall()
        if not staged:
            return 0
        cursor.execute(HEAD)
        rows = _linked(cursor.fetchone(), [row[1] for row in staged])
        with cursor.cursor.copy(COPY) as copy:  # the driver's own cursor: COPY is many times an INSERT's speed
            for row in rows:
                copy.write_row(row)
        cursor.execute("SELECT set_config('audit.chaining', 'on', true)")
        cursor.execute("DELETE FROM audit_pendingevent WHERE id = ANY(%s)", [[row[0] for row in staged]])
        cursor.execute("SELECT set_config('audit.chaining', '', true)")
        _checkpoint_due(rows[0][0], rows[-1][0])
    return len(rows)


def _linked(head: tuple[int, str, datetime] | None, entries: list[str]) -> list[tuple[Any, ...]]:
    """The staged entries as chained rows (``ENTRY_FIELDS`` order) after ``head``; times never go backwards."""
    sequence, previous, floor = head if head else (0, GENESIS, None)
    now = timezone.now()
    rows = []
    for raw in entries:
        values, when = _staged(raw)
        # Never earlier than the entry before it: clocks of different hosts may disagree.
        floor = (when or now) if floor is None else max(when or now, floor)
        sequence += 1
        values.update(sequence=sequence, occurred_at=floor)
        digest = entry_hash(previous, values)
        # COPY's text format: the database parses the JSON columns itself.
        row = [_dumps(values[name]) if name in _JSON_COLUMNS else values[name] for name in CHAINED_FIELDS]
        rows.append((*row, previous, digest))
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
        return _values({name: entry.get(name) for name in _STAGED}), _staged_time(entry.get("occurred_at"))
    except (ValueError, TypeError, AttributeError):
        return _values({"action": "audit.unreadable_staged_event", "outcome": "deny"}), None


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def _staged_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _checkpoint_due(first: int, last: int) -> None:
    """Every ``AUDIT_CHECKPOINT_EVERY`` events, sign a checkpoint once this transaction commits."""
    from django.conf import settings  # noqa: PLC0415  # settings are read late on purpose (tests override)

    every = settings.AUDIT_CHECKPOINT_EVERY
    if last // every > (first - 1) // every:
        schema = tenant_connection().schema_name
        transaction.on_commit(lambda: _enqueue("checkpoint_schema", schema))


def _enqueue(task: str, schema: str) -> bool:
    """Hand ``schema`` to a worker; without a broker the periodic tasks catch up, the request goes on."""
    from security.audit import tasks  # noqa: PLC0415  # tasks import this module

    try:
        getattr(tasks, task).apply_async(args=(schema,), retry=False)
    except Exception as error:  # noqa: BLE001  # any broker failure: the periodic task does it later
        logger.warning("could not enqueue %s for %s (%s)", task, schema, type(error).__name__)
        return False
    return True
