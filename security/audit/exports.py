"""Building an export of ``[since, until)`` and its signed manifest, streaming with bounded memory.

Times never go backwards along the chain, so a time range is a contiguous run
of sequences. The manifest proves the file is that whole run:

- ``start``: the last checkpoint at or before the entry just before the range
  (``before``, given in full to show it is outside), and the leaf hashes of
  the entries between them;
- ``end``: the entry just after the range (``after``, in full), the leaf
  hashes up to the first checkpoint at or after it, and that checkpoint. With
  no entry after the range, ``head_sequence`` says where the log ended when
  the manifest was signed (after ``until``), so nothing can follow unseen.

``purges`` holds the log's signed purge statements, so a range that begins
where a purge cut the log is accounted for offline. The manifest is signed by
the log's audit key as a whole; the checkpoints in it
were signed when the events happened, so a chain rebuilt later does not
match them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from core.schema import tenant_connection
from security.audit.checkpoints import (
    MANIFEST_TYPE,
    checkpoint_at,
    checkpoint_signed,
    sign_document,
)
from security.audit.formats import csv_lines, fhir_lines, jsonl_lines, write_lines
from security.audit.hashing import ENTRY_FIELDS, format_time, leaf_hash
from security.audit.models import AuditEvent, Checkpoint, PurgeStatement
from security.audit.sequencer import audit_chain

BATCH = 2000
EXTENSIONS = {"csv": "csv", "jsonl": "jsonl", "fhir": "fhir.json"}


@dataclass(frozen=True)
class Written:
    """What an export wrote: its manifest (signed) and the file's size."""

    manifest: dict[str, Any]
    size: int


def _entries(first: int, last: int) -> Iterator[dict[str, Any]]:
    rows = AuditEvent.objects.filter(sequence__gte=first, sequence__lte=last).order_by("sequence")
    for row in rows.values(*ENTRY_FIELDS).iterator(chunk_size=BATCH):
        row["occurred_at"] = format_time(row["occurred_at"])
        yield row


def _entry(sequence: int | None) -> dict[str, Any] | None:
    return None if sequence is None else next(_entries(sequence, sequence), None)


def _leaves(first: int, last: int) -> list[str]:
    return [leaf_hash(entry) for entry in _entries(first, last)]


def _lines(kind: str, entries: Iterable[dict[str, Any]], now: datetime) -> Iterable[str]:
    if kind == "csv":
        return csv_lines(entries)
    if kind == "fhir":
        return fhir_lines(entries, log=tenant_connection().schema_name, timestamp=format_time(now))
    return jsonl_lines(entries)


@dataclass(frozen=True)
class _Range:
    head: int
    lowest: int
    before: int | None
    after: int | None

    @property
    def first(self) -> int:
        return self.before + 1 if self.before is not None else self.lowest

    @property
    def last(self) -> int:
        return self.after - 1 if self.after is not None else self.head


def _range(since: datetime, until: datetime) -> _Range:
    bounds = AuditEvent.objects.aggregate(head=Max("sequence"), lowest=Min("sequence"))
    head, lowest = bounds["head"] or 0, bounds["lowest"] or 1
    events = AuditEvent.objects.filter(sequence__lte=head)
    before = events.filter(occurred_at__lt=since).aggregate(value=Max("sequence"))["value"]
    after = events.filter(occurred_at__gte=until).aggregate(value=Min("sequence"))["value"]
    return _Range(head=head, lowest=lowest, before=before, after=after)


def _start(span: _Range) -> dict[str, Any]:
    """The anchor before the range: checkpoint, skipped leaves, the entry just before."""
    anchor_at = span.before - 1 if span.before is not None else span.lowest - 1
    checkpoint = Checkpoint.objects.filter(sequence__lte=anchor_at).order_by("-sequence").first()
    base = checkpoint.sequence if checkpoint else 0
    return {
        "checkpoint": checkpoint_signed(checkpoint).as_dict() if checkpoint else None,
        "leaves": _leaves(base + 1, anchor_at) if anchor_at > base else [],
        "before": _entry(span.before),
    }


def _end(span: _Range) -> dict[str, Any]:
    """The anchor after the range: the entry just after, skipped leaves, the checkpoint."""
    pinned_from = span.after if span.after is not None else span.last
    checkpoint = Checkpoint.objects.filter(sequence__gte=pinned_from, sequence__lte=span.head).first()
    if checkpoint is None:
        checkpoint = checkpoint_at(span.head)
    return {
        "after": _entry(span.after),
        "leaves": _leaves(pinned_from + 1, checkpoint.sequence) if checkpoint.sequence > pinned_from else [],
        "checkpoint": checkpoint_signed(checkpoint).as_dict(),
    }


def export_write(
    handle: IO[bytes],
    *,
    kind: str,
    since: datetime,
    until: datetime,
    file_name: str,
    progress: Callable[[int], None] | None = None,
) -> Written:
    """Write the events of ``[since, until)`` in the current schema to ``handle``; return the signed manifest.

    Reads under one repeatable-read snapshot so the file, the proofs and the
    head agree. ``until`` must not be in the future (the log could still grow
    inside the range).
    """
    now = timezone.now()
    if until > now:
        raise ValueError("until is in the future")
    audit_chain()  # what is chained from here on is timed after ``until``: the range is closed
    outer = connection.in_atomic_block
    with transaction.atomic():
        if not outer:  # a transaction of our own: make it one snapshot (inside another, the caller's holds)
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        span = _range(since, until)
        digest, count = hashlib.sha256(), 0

        def counted() -> Iterator[dict[str, Any]]:
            nonlocal count
            if span.head == 0 or span.first > span.last:
                return
            for entry in _entries(span.first, span.last):
                count += 1
                if progress is not None and count % BATCH == 0:
                    progress(BATCH)
                yield entry

        size = write_lines(_lines(kind, counted(), now), handle, digest)
        if progress is not None:
            progress(count % BATCH)
        empty = span.head == 0
        manifest: dict[str, Any] = {
            "type": MANIFEST_TYPE,
            "log": tenant_connection().schema_name,
            "community": tenant_connection().schema_name,
            "format": kind,
            "file": file_name,
            "sha256": digest.hexdigest(),
            "bytes": size,
            "count": count,
            "since": format_time(since),
            "until": format_time(until),
            "first_sequence": span.first if count else None,
            "last_sequence": span.last if count else (span.first - 1),
            "head_sequence": span.head,
            "created_at": format_time(timezone.now()),
            "start": _start(span) if not empty else {"checkpoint": None, "leaves": [], "before": None},
            "end": _end(span) if not empty else None,
            "purges": [
                {"statement": purge.statement, "key_id": purge.key_id, "signature": purge.signature}
                for purge in PurgeStatement.objects.order_by("through")
            ],
        }
    signed = sign_document(manifest)
    manifest["signature"] = {"key_id": signed.key_id, "signature": signed.signature}
    return Written(manifest, size)


def manifest_text(manifest: dict[str, Any]) -> str:
    """The manifest file's text (indented for people; the signature covers its canonical form)."""
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def export_to_path(path: Path, **arguments: Any) -> Written:
    """Write the export to ``path`` (0600) and its manifest to ``<path>.manifest.json``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        path.chmod(0o600)
        written = export_write(handle, file_name=path.name, **arguments)
    manifest_path = Path(f"{path}.manifest.json")
    manifest_path.write_text(manifest_text(written.manifest), encoding="utf-8")
    manifest_path.chmod(0o600)
    return written
