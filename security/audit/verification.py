"""Verifying the chain: live from the database, and offline from an export and its manifest.

Both walk the chain with :class:`Walker`, which knows the last sequence and
hash it vouched for. Entries are checked in full; entries a proof skips are
folded in by their leaf hash; signed checkpoints pin the walk to hashes the
signing key vouched for when they were made. Any failure names the first
sequence number that does not check out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.canonical import canonical_text
from security.audit.checkpoints import load_public_keys_pem, parse_statement, public_keys, verify_signed
from security.audit.formats import FormatError, csv_read, fhir_read, jsonl_read
from security.audit.hashing import ENTRY_FIELDS, GENESIS, entry_hash, link
from security.audit.models import AuditEvent, Checkpoint
from security.audit.sequencer import audit_chain

PURGE_ACTION = "audit.purge"


class ChainBroken(Exception):  # a verdict, not an error of the program
    """The chain does not check out at ``sequence``."""

    def __init__(self, sequence: int | None, problem: str) -> None:
        super().__init__(f"#{sequence}: {problem}" if sequence is not None else problem)
        self.sequence = sequence
        self.problem = problem


@dataclass
class Walker:
    """The last sequence and hash vouched for, and how many entries were checked in full."""

    sequence: int = 0
    hash: str = GENESIS
    checked: int = 0

    def skip(self, leaf: str) -> None:
        """Fold in an entry known only by its leaf hash."""
        self.sequence += 1
        self.hash = link(self.hash, leaf)

    def entry(self, entry: Mapping[str, Any]) -> None:
        """Check the next entry in full, or raise :class:`ChainBroken` naming the first bad sequence."""
        expected = self.sequence + 1
        if int(entry["sequence"]) != expected:
            raise ChainBroken(expected, f"expected #{expected}, found #{entry['sequence']}")
        if entry["previous_hash"] != self.hash:
            raise ChainBroken(expected, "does not link to the entry before it")
        if entry["entry_hash"] != entry_hash(self.hash, entry):
            raise ChainBroken(expected, "its content does not match its hash")
        self.sequence, self.hash, self.checked = expected, entry["entry_hash"], self.checked + 1

    def pinned(self, statement: Mapping[str, Any]) -> None:
        """Check that a checkpoint's hash is the chain's at its sequence."""
        if statement["entry_hash"] != self.hash:
            raise ChainBroken(statement["sequence"], "differs from the signed checkpoint at this sequence")


@dataclass(frozen=True)
class Verification:
    """The outcome: entries checked, and the first bad sequence with the problem (None when intact)."""

    checked: int
    first_bad_sequence: int | None = None
    problem: str = ""
    checkpoints: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """Whether everything checked out."""
        return not self.problem


def signed_statement(
    text: str, signature: str, kid: str, keys: Mapping[str, Ed25519PublicKey], *, at: int | None
) -> dict[str, Any]:
    """A checkpoint statement whose signature verifies, or :class:`ChainBroken`."""
    if not verify_signed(text, signature, kid, keys):
        raise ChainBroken(at, f"checkpoint signature does not verify with key {kid}")
    try:
        return parse_statement(text)
    except ValueError as error:
        raise ChainBroken(at, str(error)) from error


# --- live ---------------------------------------------------------------------------


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


# --- offline ------------------------------------------------------------------------


def verify_export(
    entries: Iterable[Mapping[str, Any]], manifest: Mapping[str, Any], keys: Mapping[str, Ed25519PublicKey]
) -> Verification:
    """Verify exported entries against their manifest with the auditor's public keys; no database.

    The caller has already checked the manifest's own signature and will
    compare the file's SHA-256 once the entries are read.
    """
    try:
        return _verify_export(entries, manifest, keys)
    except ChainBroken as broken:
        return Verification(0, broken.sequence, broken.problem)
    except (KeyError, TypeError, ValueError) as error:
        return Verification(0, None, f"the manifest or an entry is malformed ({type(error).__name__}: {error})")


def _start(manifest: Mapping[str, Any], keys: Mapping[str, Ed25519PublicKey]) -> Walker:
    start = manifest["start"]
    walker = Walker()
    if start["checkpoint"] is not None:
        statement = _signed(start["checkpoint"], keys)
        walker = Walker(sequence=statement["sequence"], hash=statement["entry_hash"])
    for leaf in start["leaves"]:
        walker.skip(leaf)
    if start["before"] is not None:
        walker.entry(start["before"])
        if start["before"]["occurred_at"] >= manifest["since"]:
            raise ChainBroken(walker.sequence, "the entry before the range is not before its start")
    return walker


def _signed(document: Mapping[str, Any], keys: Mapping[str, Ed25519PublicKey]) -> dict[str, Any]:
    return signed_statement(document["statement"], document["signature"], document["key_id"], keys, at=None)


def _finish(walker: Walker, manifest: Mapping[str, Any], keys: Mapping[str, Ed25519PublicKey]) -> None:
    end = manifest["end"]
    if end is None:  # the log was empty when the manifest was signed
        if manifest["head_sequence"] != 0 or walker.sequence != 0 or manifest["created_at"] < manifest["until"]:
            raise ChainBroken(1, "the manifest says the log was empty, but it was not")
        return
    if end["after"] is not None:
        walker.entry(end["after"])
        if end["after"]["occurred_at"] < manifest["until"]:
            raise ChainBroken(walker.sequence, "the entry after the range is not after its end")
    elif manifest["head_sequence"] != walker.sequence or manifest["created_at"] < manifest["until"]:
        raise ChainBroken(walker.sequence + 1, f"missing: the log reached #{manifest['head_sequence']}")
    for leaf in end["leaves"]:
        walker.skip(leaf)
    statement = _signed(end["checkpoint"], keys)
    if statement["sequence"] != walker.sequence:
        raise ChainBroken(
            walker.sequence, f"the proof ends at #{walker.sequence}, the checkpoint at #{statement['sequence']}"
        )
    walker.pinned(statement)


def _verify_export(
    entries: Iterable[Mapping[str, Any]], manifest: Mapping[str, Any], keys: Mapping[str, Ed25519PublicKey]
) -> Verification:
    walker = _start(manifest, keys)
    since, until, count = manifest["since"], manifest["until"], 0
    for entry in entries:
        count += 1
        try:
            walker.entry(entry)
        except ChainBroken:
            if walker.sequence == manifest["last_sequence"]:  # the file goes on past the range
                raise ChainBroken(walker.sequence + 1, "an entry beyond the exported range") from None
            raise
        if not since <= entry["occurred_at"] < until:
            raise ChainBroken(walker.sequence, "outside the exported time range")
        if walker.sequence > manifest["last_sequence"]:
            raise ChainBroken(walker.sequence, "an entry beyond the exported range")
    if count != manifest["count"]:
        raise ChainBroken(walker.sequence + 1, f"missing: {manifest['count'] - count} entries")
    _finish(walker, manifest, keys)
    return Verification(count, checkpoints=2 if manifest["start"]["checkpoint"] else 1)


def manifest_body(manifest: Mapping[str, Any]) -> str | None:
    """What the manifest's signature covers: everything but the signature, canonically.

    ``None`` for a manifest holding a value canonical JSON cannot (an integer
    over 64 bits, say): no manifest the service signed looks like that.
    """
    try:
        return canonical_text({key: value for key, value in manifest.items() if key != "signature"})
    except TypeError:
        return None


def load_manifest(text: str) -> dict[str, Any]:
    """Parse a manifest file."""
    document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError("a manifest is a JSON object")
    return document


def _reader(kind: str, handle: Any, log: str) -> Iterator[dict[str, Any]]:
    if kind == "csv":
        return csv_read(handle)
    if kind == "fhir":
        return fhir_read(handle, log=log)
    if kind == "jsonl":
        return jsonl_read(handle)
    raise FormatError(f"unknown export format {kind!r}")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(export: Path, manifest_path: Path, public_key: Path) -> Verification:
    """Verify an export file with its manifest and the auditor's copy of the public keys (PEM)."""
    keys = load_public_keys_pem(public_key.read_text(encoding="ascii"))
    if not keys:
        return Verification(0, None, f"{public_key.name} holds no Ed25519 public key")
    manifest = load_manifest(manifest_path.read_text(encoding="utf-8"))
    signature, body = manifest.get("signature"), manifest_body(manifest)
    if (
        not isinstance(signature, dict)
        or body is None
        or not verify_signed(body, str(signature.get("signature", "")), str(signature.get("key_id", "")), keys)
    ):
        return Verification(0, None, "the manifest's signature does not verify with the given public keys")
    with export.open(encoding="utf-8", newline="") as handle:
        result = verify_export(_reader(str(manifest.get("format")), handle, str(manifest.get("log"))), manifest, keys)
    if result.intact and _file_sha256(export) != manifest["sha256"]:
        return Verification(result.checked, None, "the file's SHA-256 differs from the manifest's")
    return result
