"""Appending to the hash chain, and verifying it.

Each entry has a *leaf hash*, SHA-256 of its canonical JSON (RFC 8785: sorted
keys, no whitespace; the entry holds only strings, integers, booleans and
lists of strings), and an *entry hash*, SHA-256 of the previous entry hash
and the leaf hash (both as raw 32 bytes). Changing, deleting, inserting or
reordering any entry breaks every entry hash after it, and a signed
checkpoint over the hash at some sequence pins everything before it.
Keeping the leaf hash separate lets a proof carry 32 bytes per entry it
skips, instead of the entry.

Appends are serialised per schema by a transaction-scoped advisory lock, so
sequence numbers have no gaps and times never go backwards along the chain
(a time range is a contiguous run of sequences).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from policy.decision import canonical_json
from security.audit.models import AuditEvent
from tenants.schema import tenant_connection

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
LIST_FIELDS = ("actor_roles", "participant_pseudonyms", "reasons")
_LIMITS = {"actor_id": 64, "action": 64, "resource_type": 64, "resource_id": 64, "purpose": 32}
_LIMITS |= {"decision_id": 64, "policy_revision": 200, "request_id": 64, "client_ip": 64, "user_agent": 256}


def format_time(value: datetime) -> str:
    """The one text form of a time in the chain: UTC, ISO 8601, microseconds, ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_entry(values: Mapping[str, Any]) -> str:
    """The canonical JSON of an entry's chained fields."""
    entry = {}
    for name in CHAINED_FIELDS:
        value = values[name]
        entry[name] = format_time(value) if isinstance(value, datetime) else value
    return canonical_json(entry)


def leaf_hash(values: Mapping[str, Any]) -> str:
    """SHA-256 of the entry's canonical JSON (hex)."""
    return hashlib.sha256(canonical_entry(values).encode("utf-8")).hexdigest()


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


def audit_append(**fields: Any) -> AuditEvent:
    """Append one event to the current schema's chain, inside the caller's transaction if any.

    Call it last in a transaction: the chain's lock is held until the commit.
    """
    values = _values(fields)
    # No savepoint: if the append fails, the caller's whole transaction must fail with it.
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('audit-chain:' || current_schema()))")
        head = AuditEvent.objects.order_by("-sequence").values("sequence", "entry_hash", "occurred_at").first()
        now = fields.get("occurred_at") or timezone.now()
        values["sequence"] = head["sequence"] + 1 if head else 1
        # Never earlier than the entry before it: clocks of different hosts may disagree.
        values["occurred_at"] = max(now, head["occurred_at"]) if head else now
        previous = head["entry_hash"] if head else GENESIS
        event = AuditEvent.objects.create(**values, previous_hash=previous, entry_hash=entry_hash(previous, values))
    _checkpoint_due(event.sequence)
    return event


def _checkpoint_due(sequence: int) -> None:
    """Every ``AUDIT_CHECKPOINT_EVERY`` events, sign a checkpoint once this transaction commits."""
    from django.conf import settings  # noqa: PLC0415  # settings are read late on purpose (tests override)

    if sequence % settings.AUDIT_CHECKPOINT_EVERY == 0:
        schema = tenant_connection().schema_name
        transaction.on_commit(lambda: _enqueue_checkpoint(schema))


def _enqueue_checkpoint(schema: str) -> None:
    """Ask a worker to sign; without a broker the periodic checkpoint catches up, the request goes on."""
    from security.audit.tasks import checkpoint_schema  # noqa: PLC0415  # tasks import this module

    try:
        checkpoint_schema.apply_async(args=(schema,), retry=False)
    except Exception:  # noqa: BLE001  # any broker failure: the periodic task signs later
        logger.warning("could not enqueue an audit checkpoint for %s", schema)
