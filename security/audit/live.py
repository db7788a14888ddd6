"""Verifying the live chain of the current schema: links, hashes, checkpoints, purges, tail, and the witness.

It chains what is staged first, then walks every entry with the offline
verifier's :class:`~security.audit.offline.Walker` and pins it to every
stored checkpoint, each checked against the log's published public keys and
required to name this log and community. It then checks the log against the
witness (:mod:`security.audit.witness`), which the database cannot rewrite:
the log must reach the latest witnessed checkpoint and agree with it, so a cut
tail, a wiped log or a rebuilt range is caught even when the database's own
checkpoints went with it. A log whose oldest entries were purged starts at the
cut of a signed purge statement (stored, or witnessed) for exactly that cut,
made outside the retention it names; an ``audit.purge`` event alone proves
nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.utils import timezone

from security.audit.checkpoints import current_log, public_keys
from security.audit.hashing import ENTRY_FIELDS, format_time
from security.audit.models import AuditEvent, Checkpoint, PurgeStatement
from security.audit.offline import (
    CLOCK_SKEW,
    ChainBroken,
    Verification,
    Walker,
    Witnessed,
    WitnessedStatement,
    purge_start,
    signed_statement,
    witnessed,
)
from security.audit.sequencer import audit_chain
from security.audit.witness import AuditWitness, WitnessUnavailable, get_witness, witness_log


def _live_checkpoints(keys: Mapping[str, Ed25519PublicKey], log: str) -> Iterator[dict[str, Any]]:
    for checkpoint in Checkpoint.objects.order_by("sequence").iterator():
        yield signed_statement(
            checkpoint.statement, checkpoint.signature, checkpoint.key_id, keys, at=checkpoint.sequence, log=log,
            community=log,
        )  # fmt: skip


def _live_purges(keys: Mapping[str, Ed25519PublicKey], log: str) -> list[dict[str, Any]]:
    return [
        signed_statement(purge.statement, purge.signature, purge.key_id, keys, at=purge.through, log=log,
                         community=log, kind="purge")
        for purge in PurgeStatement.objects.order_by("through")
    ]  # fmt: skip


def verify_live(batch_size: int = 5000, *, witness: AuditWitness | None = None) -> Verification:
    """Verify the current schema's chain (after chaining what is staged) against its checkpoints and the witness."""
    audit_chain()
    return _verified(batch_size, witness, through=None)


def verify_restored(batch_size: int = 5000, *, witness: AuditWitness | None = None) -> Verification:
    """:func:`verify_live` for a copy restored to a point in time: the witness's checkpoints it reaches.

    The copy's log ends where its point in time ended; the witness's later
    checkpoints vouch for entries the restore lost, so they are left out, and
    the ones up to the copy's end must still match it. What was still staged
    at that point is not chained here: chained now, it would not be the
    chain the live log (and its witness) went on with.
    """
    head = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
    return _verified(batch_size, witness, through=head)


def _verified(batch_size: int, witness: AuditWitness | None, *, through: int | None) -> Verification:
    """The current schema's chain against its checkpoints and the witness's (those up to ``through``)."""
    log = current_log()
    try:
        items = witness_log(log, witness or get_witness(), through=through)
    except WitnessUnavailable as error:
        return Verification(0, None, f"the witness cannot be read ({error}): the log cannot be vouched for")
    try:
        return _verify_live(batch_size, log, items)
    except ChainBroken as broken:
        return Verification(0, broken.sequence, broken.problem)


def _verify_live(batch_size: int, log: str, items: list[WitnessedStatement]) -> Verification:
    keys = public_keys(log)
    statements = list(_live_checkpoints(keys, log)) if Checkpoint.objects.exists() else []
    seen = witnessed(items, keys, log=log, community=log)
    latest = seen.latest
    first = AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True).first()
    if first is None:
        _empty(latest, statements)
        return Verification(0, notes=seen.note() if items else [])
    walker = Walker() if first == 1 else purge_start(first, [*_live_purges(keys, log), *seen.purges])
    if latest is not None and latest["sequence"] >= walker.sequence:
        walker.anchors = {latest["sequence"]: latest}
        walker.witnessed()  # at a purge's cut: it must agree with the purge statement
    pending = [item for item in statements if item["sequence"] >= walker.sequence]
    while pending and pending[0]["sequence"] == walker.sequence:
        walker.pinned(pending.pop(0))  # the checkpoint at a purge's cut agrees with the purge statement
    rows = AuditEvent.objects.order_by("sequence").values(*ENTRY_FIELDS)
    for row in rows.iterator(chunk_size=batch_size):
        walker.entry(row)
        while pending and pending[0]["sequence"] == walker.sequence:
            walker.pinned(pending.pop(0))
    if walker.anchors:
        raise ChainBroken(
            walker.sequence + 1, f"missing: the witness vouches for #{latest and latest['sequence']} "
            f"but the log ends at #{walker.sequence}",
        )  # fmt: skip
    if pending:
        raise ChainBroken(walker.sequence + 1, f"missing: checkpoint #{pending[0]['sequence']} vouches for it")
    if walker.latest and walker.latest > format_time(timezone.now() + CLOCK_SKEW):
        raise ChainBroken(walker.sequence, f"the log's newest entry is dated {walker.latest}, in the future")
    return Verification(walker.checked, checkpoints=len(statements), notes=_notes(seen, statements))


def _empty(latest: Mapping[str, Any] | None, statements: list[dict[str, Any]]) -> None:
    """An empty log is intact only if neither the witness nor a checkpoint vouches for an entry."""
    if latest is not None:
        raise ChainBroken(1, f"missing: the witness vouches for #{latest['sequence']} but the log is empty")
    if statements:
        raise ChainBroken(1, f"the log is empty but a checkpoint vouches for #{statements[-1]['sequence']}")


SHOWN = 3  # unwitnessed checkpoints named in a verdict


def _notes(seen: Witnessed, statements: list[dict[str, Any]]) -> list[str]:
    """How far the witness vouches, and the checkpoints it has not taken yet (published on the next run)."""
    latest = seen.latest
    after = latest["sequence"] if latest else 0
    unwitnessed = [item["sequence"] for item in statements if item["sequence"] > after]
    notes = seen.note()
    if unwitnessed:
        shown = ", ".join(f"#{number}" for number in unwitnessed[:SHOWN]) + (" …" if len(unwitnessed) > SHOWN else "")
        notes.append(f"{len(unwitnessed)} checkpoints not witnessed yet ({shown})")
    return notes
