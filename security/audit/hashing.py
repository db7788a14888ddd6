"""What the hash chain hashes, and how: the chained fields, the one time format, leaf, link and entry hashes.

Each entry has a *leaf hash*, SHA-256 of its canonical JSON (RFC 8785: sorted
keys, no whitespace; the entry holds only strings, integers, booleans and
lists of strings), and an *entry hash*, SHA-256 of the previous entry hash
and the leaf hash (both as raw 32 bytes). Changing, deleting, inserting or
reordering any entry breaks every entry hash after it, and a signed
checkpoint over the hash at some sequence pins everything before it.
Keeping the leaf hash separate lets a proof carry 32 bytes per entry it
skips, instead of the entry.

Pure: the standard library and :mod:`core.canonical` only, no Django, so the
offline verifier (:mod:`security.audit.offline`) runs on it without the
project's settings.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.canonical import canonical_json

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
_pick_chained = operator.itemgetter(*CHAINED_FIELDS)


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
