"""Verifying the live chain of the current schema, from the database: links, hashes, checkpoints, purges, tail.

It chains what is staged first, then walks every entry with the offline
verifier's :class:`~security.audit.offline.Walker` and pins it to every
stored checkpoint, each checked against the published public keys. A log
whose oldest entries were purged starts at the checkpoint the purge left at
the cut, and must hold the ``audit.purge`` event that accounts for them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from security.audit.checkpoints import public_keys
from security.audit.hashing import ENTRY_FIELDS
from security.audit.models import AuditEvent, Checkpoint
from security.audit.offline import ChainBroken, Verification, Walker, signed_statement
from security.audit.sequencer import audit_chain

PURGE_ACTION = "audit.purge"


def _live_checkpoints(keys: Mapping[str, Ed25519PublicKey]) -> Iterator[dict[str, Any]]:
    for checkpoint in Checkpoint.objects.order_by("sequence").iterator():
        yield signed_statement(
            checkpoint.statement, checkpoint.signature, checkpoint.key_id, keys, at=checkpoint.sequence
        )


def _live_start(first: int, statements: list[dict[str, Any]]) -> Walker:
    """Where the live chain starts: genesis, or the checkpoint a purge left at the cut."""
    if first == 1:
        return Walker()
    anchor = next((item for item in statements if item["sequence"] == first - 1), None)
    if anchor is None:
        raise ChainBroken(1, f"entries before #{first} are missing and no signed checkpoint marks a purge")
    return Walker(sequence=first - 1, hash=anchor["entry_hash"])


def verify_live(batch_size: int = 5000) -> Verification:
    """Verify the current schema's chain (after chaining what is staged): links, hashes, checkpoints, purges, tail."""
    audit_chain()
    try:
        return _verify_live(batch_size)
    except ChainBroken as broken:
        return Verification(0, broken.sequence, broken.problem)


def _verify_live(batch_size: int) -> Verification:
    statements = list(_live_checkpoints(public_keys())) if Checkpoint.objects.exists() else []
    first = AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True).first()
    if first is None:
        if statements:
            raise ChainBroken(1, f"the log is empty but a checkpoint vouches for #{statements[-1]['sequence']}")
        return Verification(0)
    walker = _live_start(first, statements)
    pending = [item for item in statements if item["sequence"] > walker.sequence]
    purged_through = None
    rows = AuditEvent.objects.order_by("sequence").values(*ENTRY_FIELDS)
    for row in rows.iterator(chunk_size=batch_size):
        walker.entry(row)
        if row["action"] == PURGE_ACTION and row["outcome"] == "allow":
            purged_through = int(row["resource_id"] or 0)
        while pending and pending[0]["sequence"] == walker.sequence:
            walker.pinned(pending.pop(0))
    if pending:
        raise ChainBroken(walker.sequence + 1, f"missing: checkpoint #{pending[0]['sequence']} vouches for it")
    if first > 1 and purged_through != first - 1:
        raise ChainBroken(1, f"entries before #{first} are missing and no purge event accounts for them")
    return Verification(walker.checked, checkpoints=len(statements))
