"""Appending to the hash chain, and verifying it.

Each entry's hash covers the previous entry's hash and the entry's own
canonical JSON (sorted keys, no spaces: RFC 8785 for the types used here), so
changing, deleting, inserting or reordering any entry breaks every hash after
it. Appends are serialised per community by a transaction-scoped advisory
lock, so sequence numbers have no gaps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from policy.decision import canonical_json
from security.audit.models import AuditEvent

GENESIS = "0" * 64
CHAINED_FIELDS = (
    "sequence",
    "occurred_at",
    "actor_id",
    "actor_roles",
    "action",
    "resource_type",
    "resource_id",
    "participant_pseudonym",
    "purpose",
    "outcome",
    "decision_id",
    "policy_revision",
    "reasons",
    "request_id",
    "client_ip",
    "user_agent",
    "break_glass",
)


def canonical_entry(values: Mapping[str, Any]) -> str:
    """The canonical JSON of an entry's chained fields (times in UTC, ISO 8601, microseconds)."""
    entry = {}
    for name in CHAINED_FIELDS:
        value = values[name]
        if isinstance(value, datetime):
            value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        entry[name] = value
    return canonical_json(entry)


def entry_hash(previous_hash: str, values: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the entry."""
    return hashlib.sha256((previous_hash + canonical_entry(values)).encode("utf-8")).hexdigest()


def audit_append(**fields: Any) -> AuditEvent:
    """Append one event to the current community's chain (inside the caller's transaction, if any)."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('audit-chain:' || current_schema()))")
        head = AuditEvent.objects.order_by("-sequence").values("sequence", "entry_hash").first()
        values = {name: fields.get(name, "") for name in CHAINED_FIELDS}
        values.update(
            sequence=(head["sequence"] + 1) if head else 1,
            occurred_at=fields.get("occurred_at") or timezone.now(),
            actor_roles=list(fields.get("actor_roles", [])),
            reasons=list(fields.get("reasons", [])),
            break_glass=bool(fields.get("break_glass", False)),
        )
        previous = head["entry_hash"] if head else GENESIS
        return AuditEvent.objects.create(**values, previous_hash=previous, entry_hash=entry_hash(previous, values))


@dataclass(frozen=True)
class Verification:
    """How far a chain checked out, and where it first broke (None when intact)."""

    checked: int
    first_bad_sequence: int | None
    problem: str = ""

    @property
    def intact(self) -> bool:
        """Whether every entry checked out."""
        return self.first_bad_sequence is None


def verify_entries(
    entries: Iterable[Mapping[str, Any]], *, previous_hash: str = GENESIS, first: int = 1
) -> Verification:
    """Walk entries in order: sequence continuity, previous-hash links and each entry's own hash."""
    expected_sequence, checked = first, 0
    for entry in entries:
        sequence = int(entry["sequence"])
        if sequence != expected_sequence:
            return Verification(checked, expected_sequence, f"expected #{expected_sequence}, found #{sequence}")
        if entry["previous_hash"] != previous_hash:
            return Verification(checked, sequence, "does not link to the entry before it")
        if entry["entry_hash"] != entry_hash(previous_hash, entry):
            return Verification(checked, sequence, "its content does not match its hash")
        previous_hash, expected_sequence, checked = entry["entry_hash"], sequence + 1, checked + 1
    return Verification(checked, None)


def verify_live(batch_size: int = 5000) -> Verification:
    """Verify the current community's whole chain from the database, streaming."""
    rows = AuditEvent.objects.order_by("sequence").values(*CHAINED_FIELDS, "previous_hash", "entry_hash")
    return verify_entries(rows.iterator(chunk_size=batch_size))
