"""Verifying an export offline: the file, its signed manifest, the auditor's copy of the public keys, and the witness.

It trusts only the public keys the auditor obtained on their own
(``GET /api/v1/audit/keys/``, ``audit_keys``). It checks the manifest's
signature, walks every entry with :class:`Walker` (entries in full, entries a
proof skips folded in by their leaf hash), pins the walk to the signed
checkpoints at both ends and compares the file's SHA-256. Any failure names
the first sequence number that does not check out.

Given the witness's copy of the log's signed statements as well (a fourth
file, JSON Lines, one statement a line: what ``audit_witness`` writes, or the
objects of the witness bucket concatenated), it also checks the file against
the witness: every witnessed checkpoint inside the proven range must agree
with the chain, and a witnessed checkpoint beyond the log's head when the
export was made means the log had been cut. Each statement must name the
export's log and community. A log that does not start at #1 needs a signed
purge statement (``audit-purge/v1``) for exactly that cut, made outside the
retention period.

No Django, no settings, no database, no network: this module imports the
standard library, ``cryptography``, :mod:`core.canonical` and the pure
:mod:`security.audit.hashing` and :mod:`security.audit.formats` only (they use
orjson when it is there, the standard library when not), and a test runs it
with Django and orjson unimportable. An auditor runs
it from a copy of the project's source, without its settings or its other
dependencies::

    python -m security.audit.offline alpha-2026h1.jsonl alpha-2026h1.jsonl.manifest.json audit-keys.pem [witness.jsonl]
    # export alpha-2026h1.jsonl: 41210 entries intact, 2 signed checkpoints verified

It exits 0 when everything checks out, 1 otherwise (the reason on standard
error), 2 for wrong arguments. The same checks back ``manage.py audit_verify
--export``; the live verifier (:mod:`security.audit.live`) walks the
database's chain with the same :class:`Walker`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.canonical import canonical_text
from security.audit.formats import FormatError, csv_read, fhir_read, jsonl_read
from security.audit.hashing import GENESIS, entry_hash, format_time, link

STATEMENT_TYPE = "audit-checkpoint/v1"
PURGE_TYPE = "audit-purge/v1"
# The floor the service enforces (AUDIT_MIN_RETENTION_DAYS): six years, 45 CFR 164.316(b)(2).
MIN_RETENTION_DAYS = 6 * 366
WITNESS_KINDS = {"checkpoint": STATEMENT_TYPE, "purge": PURGE_TYPE}


# How far the database's clock (event times) and the service's (signatures) may disagree.
CLOCK_SKEW = timedelta(minutes=5)


def _time_text(value: Any) -> str:
    """An entry's time in the chain's one text form (a database row holds a datetime)."""
    return format_time(value) if isinstance(value, datetime) else str(value)


def _parsed(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


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
    # Witnessed checkpoints not reached yet, by sequence: each is checked when the walk reaches it.
    anchors: dict[int, Mapping[str, Any]] = field(default_factory=dict)
    # The latest time walked so far (the chain's one text form of a time sorts as the time does).
    latest: str = ""

    def skip(self, leaf: str) -> None:
        """Fold in an entry known only by its leaf hash."""
        self.sequence += 1
        self.hash = link(self.hash, leaf)
        if self.anchors and self.sequence in self.anchors:
            self.witnessed()

    def entry(self, entry: Mapping[str, Any]) -> None:
        """Check the next entry in full, or raise :class:`ChainBroken` naming the first bad sequence."""
        expected = self.sequence + 1
        if int(entry["sequence"]) != expected:
            raise ChainBroken(expected, f"expected #{expected}, found #{entry['sequence']}")
        if entry["previous_hash"] != self.hash:
            raise ChainBroken(expected, "does not link to the entry before it")
        if entry["entry_hash"] != entry_hash(self.hash, entry):
            raise ChainBroken(expected, "its content does not match its hash")
        when = _time_text(entry["occurred_at"])
        if when < self.latest:
            raise ChainBroken(expected, "is dated before the entry before it")
        self.sequence, self.hash, self.checked, self.latest = expected, entry["entry_hash"], self.checked + 1, when
        if self.anchors and expected in self.anchors:
            self.witnessed()

    def witnessed(self) -> None:
        """Check the witnessed checkpoint at the current sequence, if there is one, and drop it from the anchors."""
        statement = self.anchors.pop(self.sequence, None)
        if statement is not None and statement["entry_hash"] != self.hash:
            raise ChainBroken(self.sequence, "differs from the witnessed checkpoint at this sequence")
        if statement is not None:
            self.dated_before(statement)

    def pinned(self, statement: Mapping[str, Any]) -> None:
        """Check that a checkpoint's hash is the chain's at its sequence."""
        if statement["entry_hash"] != self.hash:
            raise ChainBroken(statement["sequence"], "differs from the signed checkpoint at this sequence")
        self.dated_before(statement)

    def dated_before(self, statement: Mapping[str, Any]) -> None:
        """No entry a checkpoint vouches for is dated after the checkpoint was signed (a row dated 2099, say)."""
        signed_at = str(statement.get("signed_at") or "")
        if self.latest and signed_at and _parsed(self.latest) > _parsed(signed_at) + CLOCK_SKEW:
            raise ChainBroken(
                statement["sequence"], f"an entry up to here is dated {self.latest}, after the checkpoint's {signed_at}"
            )


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

    def verdict(self, what: str) -> str:
        """One line for a person: ``what`` intact with the counts, or broken at the first bad sequence."""
        if self.intact:
            line = f"{what}: {self.checked} entries intact, {self.checkpoints} signed checkpoints verified"
            return "; ".join([line, *self.notes])
        where = f" at #{self.first_bad_sequence}" if self.first_bad_sequence is not None else ""
        return f"{what} broken{where}: {self.problem}"


# --- keys, signatures, checkpoint statements ----------------------------------------


def key_id(public_key: bytes) -> str:
    """A key's id: ``ed25519:`` and the first 16 hex digits of SHA-256 of its raw 32 bytes."""
    return "ed25519:" + hashlib.sha256(public_key).hexdigest()[:16]


def load_public_keys_pem(text: str) -> dict[str, Ed25519PublicKey]:
    """Parse concatenated PEM public keys (other kinds of key are skipped)."""
    keys: dict[str, Ed25519PublicKey] = {}
    marker = "-----END PUBLIC KEY-----"
    for chunk in text.split(marker)[:-1]:
        start = chunk.find("-----BEGIN PUBLIC KEY-----")
        if start < 0:
            continue
        loaded = serialization.load_pem_public_key((chunk[start:] + marker).encode("ascii"))
        if isinstance(loaded, Ed25519PublicKey):
            raw = loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            keys[key_id(raw)] = loaded
    return keys


def verify_signed(text: str, signature: str, kid: str, keys: Mapping[str, Ed25519PublicKey]) -> bool:
    """Whether ``signature`` (base64) over ``text`` verifies with the key ``kid`` among ``keys``."""
    key = keys.get(kid)
    if key is None:
        return False
    try:
        key.verify(base64.b64decode(signature, validate=True), text.encode("utf-8"))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def parse_statement(text: str, kind: str = "checkpoint") -> dict[str, Any]:
    """A checkpoint (or purge) statement's fields, strictly (ValueError when it is not one)."""
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("type") != WITNESS_KINDS[kind]:
        raise ValueError(f"not an audit {kind} statement")
    if kind == "checkpoint" and (
        not isinstance(document.get("sequence"), int) or not isinstance(document.get("entry_hash"), str)
    ):
        raise ValueError("a checkpoint statement without sequence or hash")
    if kind == "purge":
        numbers = ("first", "through", "retention_days")
        texts = ("entry_hash", "before", "signed_at")
        if not all(isinstance(document.get(name), int) for name in numbers) or not all(
            isinstance(document.get(name), str) for name in texts
        ):
            raise ValueError("a purge statement without its range, cut, before, retention or time")
    return document


def check_names(document: Mapping[str, Any], *, log: str, community: str | None, what: str, at: int | None) -> None:
    """A statement must name the log being verified (and its community, when it names one), or :class:`ChainBroken`.

    Statements signed before checkpoints named their community carry only the log.
    """
    if document.get("log") != log:
        raise ChainBroken(at, f"{what} belongs to log {document.get('log')!r}, not {log!r}")
    if community is not None and "community" in document and document["community"] != community:
        raise ChainBroken(at, f"{what} belongs to community {document['community']!r}, not {community!r}")


def signed_statement(
    text: str,
    signature: str,
    kid: str,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    at: int | None,
    log: str | None = None,
    community: str | None = None,
    kind: str = "checkpoint",
) -> dict[str, Any]:
    """A statement whose signature verifies, naming ``log`` and ``community`` when given; else :class:`ChainBroken`."""
    what = f"the {kind} statement" if at is None else f"the {kind} statement at #{at}"
    try:
        document = parse_statement(text, kind)
    except ValueError as error:
        raise ChainBroken(at, str(error)) from error
    if log is not None:  # named first: a statement of another log fails its signature too, less legibly
        check_names(document, log=log, community=community, what=what, at=at)
    if not verify_signed(text, signature, kid, keys):
        raise ChainBroken(at, f"{kind} signature does not verify with key {kid}")
    return document


# --- purges and the witness ----------------------------------------------------------


def parse_time(text: str) -> datetime:
    """A time in the chain's one format (``2026-01-01T00:00:00.000000Z``), as an aware datetime."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def check_purge(purge: Mapping[str, Any]) -> None:
    """A purge statement must cut outside the retention it names, and name at least the legal minimum."""
    through, retention = purge["through"], purge["retention_days"]
    if retention < MIN_RETENTION_DAYS:
        raise ChainBroken(
            through, f"the purge through #{through} names {retention} days of retention, below {MIN_RETENTION_DAYS}"
        )
    if parse_time(purge["before"]) > parse_time(purge["signed_at"]) - timedelta(days=retention):
        raise ChainBroken(
            through,
            f"the purge through #{through} cut inside the {retention}-day retention period "
            f"(events before {purge['before']} purged at {purge['signed_at']})",
        )


def purge_start(first: int, purges: Iterable[Mapping[str, Any]]) -> Walker:
    """Where a log that starts at ``first`` > 1 starts: the cut of the signed purge statement for exactly that cut."""
    purges = list(purges)
    match = next((purge for purge in purges if purge["through"] == first - 1), None)
    if match is None:
        cuts = ", ".join(f"#{purge['through']}" for purge in purges) or "none"
        raise ChainBroken(
            1, f"entries before #{first} are missing and no signed purge statement accounts for them (purges: {cuts})"
        )
    check_purge(match)
    return Walker(sequence=first - 1, hash=match["entry_hash"])


@dataclass(frozen=True)
class WitnessedStatement:
    """One signed statement as the witness keeps it: its kind, the signed text, the key id and the signature."""

    kind: str
    statement: str
    key_id: str
    signature: str

    def line(self) -> str:
        """The statement as one JSON line (the witness's object body, and a line of a witness file)."""
        document = {"kind": self.kind, "statement": self.statement, "key_id": self.key_id, "signature": self.signature}
        return json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n"

    @classmethod
    def from_line(cls, text: str) -> WitnessedStatement:
        """Parse one line (ValueError when it is not a witnessed statement)."""
        document = json.loads(text)
        fields = ("kind", "statement", "key_id", "signature")
        if not isinstance(document, dict) or not all(isinstance(document.get(name), str) for name in fields):
            raise ValueError("not a witnessed statement")
        if document["kind"] not in WITNESS_KINDS:
            raise ValueError(f"a witnessed statement of unknown kind {document['kind']!r}")
        return cls(document["kind"], document["statement"], document["key_id"], document["signature"])


@dataclass
class Witnessed:
    """What the witness vouches for in one log: its checkpoints by sequence and its purge statements, all verified."""

    checkpoints: dict[int, dict[str, Any]] = field(default_factory=dict)
    purges: list[dict[str, Any]] = field(default_factory=list)

    @property
    def latest(self) -> dict[str, Any] | None:
        """The witnessed checkpoint with the highest sequence."""
        return self.checkpoints[max(self.checkpoints)] if self.checkpoints else None

    def note(self) -> list[str]:
        """How much the witness vouched for, for the verdict."""
        latest = self.latest
        return [f"witnessed through #{latest['sequence']}"] if latest else ["nothing witnessed yet"]


def witnessed(
    items: Iterable[WitnessedStatement], keys: Mapping[str, Ed25519PublicKey], *, log: str, community: str | None
) -> Witnessed:
    """Verify every witnessed statement of ``log`` (signature, log and community); those of other logs are skipped."""
    result = Witnessed()
    for item in items:
        try:
            named = json.loads(item.statement).get("log")
        except (ValueError, AttributeError):
            raise ChainBroken(None, f"a witnessed {item.kind} statement does not parse") from None
        if named != log:
            continue
        document = signed_statement(
            item.statement, item.signature, item.key_id, keys, at=None, log=log, community=community, kind=item.kind
        )
        if item.kind == "checkpoint":
            result.checkpoints[document["sequence"]] = document
        else:
            result.purges.append(document)
    return result


def read_witness_file(path: Path) -> list[WitnessedStatement]:
    """The statements of a witness file (JSON Lines; blank lines skipped). ValueError names a bad line."""
    items = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                items.append(WitnessedStatement.from_line(line))
            except ValueError as error:
                raise ValueError(f"line {number} of {path.name}: {error}") from None
    return items


# --- an export and its manifest ------------------------------------------------------


def verify_export(
    entries: Iterable[Mapping[str, Any]],
    manifest: Mapping[str, Any],
    keys: Mapping[str, Ed25519PublicKey],
    witness: Iterable[WitnessedStatement] | None = None,
) -> Verification:
    """Verify exported entries against their manifest with the auditor's public keys (and the witness); no database.

    The caller has already checked the manifest's own signature and will
    compare the file's SHA-256 once the entries are read.
    """
    try:
        return _verify_export(entries, manifest, keys, witness)
    except ChainBroken as broken:
        return Verification(0, broken.sequence, broken.problem)
    except (KeyError, TypeError, ValueError) as error:
        return Verification(0, None, f"the manifest or an entry is malformed ({type(error).__name__}: {error})")


@dataclass(frozen=True)
class _Context:
    """What every statement of an export is checked against: the keys, the log and community, the purges."""

    keys: Mapping[str, Ed25519PublicKey]
    log: str
    community: str | None
    purges: list[dict[str, Any]]


def _start(manifest: Mapping[str, Any], context: _Context, anchors: dict[int, dict[str, Any]]) -> Walker:
    start = manifest["start"]
    walker = Walker()
    if start["checkpoint"] is not None:
        statement = _signed(start["checkpoint"], context)
        walker = Walker(sequence=statement["sequence"], hash=statement["entry_hash"])
    walker.anchors = {sequence: item for sequence, item in anchors.items() if sequence >= walker.sequence}
    if walker.sequence in walker.anchors:
        walker.witnessed()
    for leaf in start["leaves"]:
        walker.skip(leaf)
    # A range that begins with the log's first entry, after #1: a signed purge must account for the cut.
    if (
        start["before"] is None
        and walker.sequence > 0
        and purge_start(walker.sequence + 1, context.purges).hash != walker.hash
    ):
        raise ChainBroken(walker.sequence, "differs from the signed purge statement's cut")
    if start["before"] is not None:
        walker.entry(start["before"])
        if start["before"]["occurred_at"] >= manifest["since"]:
            raise ChainBroken(walker.sequence, "the entry before the range is not before its start")
    return walker


def _signed(document: Mapping[str, Any], context: _Context) -> dict[str, Any]:
    return signed_statement(
        document["statement"],
        document["signature"],
        document["key_id"],
        context.keys,
        at=None,
        log=context.log,
        community=context.community,
    )


def _finish(walker: Walker, manifest: Mapping[str, Any], context: _Context) -> None:
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
    statement = _signed(end["checkpoint"], context)
    if statement["sequence"] != walker.sequence:
        raise ChainBroken(
            walker.sequence, f"the proof ends at #{walker.sequence}, the checkpoint at #{statement['sequence']}"
        )
    walker.pinned(statement)


def _witness_head(manifest: Mapping[str, Any], seen: Witnessed) -> None:
    """A checkpoint witnessed before the export was made, beyond the head it names: the log had been cut."""
    head = manifest["head_sequence"]
    before = [item for item in seen.checkpoints.values() if item["signed_at"] <= manifest["created_at"]]
    latest = max(before, key=lambda item: item["sequence"], default=None)
    if latest is not None and latest["sequence"] > head:
        raise ChainBroken(
            head + 1, f"missing: the witness vouches for #{latest['sequence']} but the log ended at #{head}"
        )


def _verify_export(
    entries: Iterable[Mapping[str, Any]],
    manifest: Mapping[str, Any],
    keys: Mapping[str, Ed25519PublicKey],
    witness: Iterable[WitnessedStatement] | None,
) -> Verification:
    log, community = str(manifest["log"]), manifest.get("community")
    seen = witnessed(witness or [], keys, log=log, community=community)
    purges = [
        signed_statement(item["statement"], item["signature"], item["key_id"], keys, at=None, log=log,
                         community=community, kind="purge")
        for item in manifest.get("purges", [])
    ]  # fmt: skip
    context = _Context(keys, log, community, [*purges, *seen.purges])
    if witness is not None:
        _witness_head(manifest, seen)
    walker = _start(manifest, context, dict(seen.checkpoints))
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
    _finish(walker, manifest, context)
    notes = seen.note() if witness is not None else []
    return Verification(count, checkpoints=2 if manifest["start"]["checkpoint"] else 1, notes=notes)


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


def _reader(kind: str, handle: IO[str], log: str) -> Iterator[dict[str, Any]]:
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


def verify_files(export: Path, manifest_path: Path, public_key: Path, *, witness: Path | None = None) -> Verification:
    """Verify an export file with its manifest and the auditor's copy of the public keys (PEM), and the witness's file.

    ``witness`` (optional) is the witness's statements of the log as JSON Lines;
    without it the export is checked against its own signed checkpoints only.
    """
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
    statements = read_witness_file(witness) if witness is not None else None
    with export.open(encoding="utf-8", newline="") as handle:
        entries = _reader(str(manifest.get("format")), handle, str(manifest.get("log")))
        result = verify_export(entries, manifest, keys, statements)
    if result.intact and _file_sha256(export) != manifest["sha256"]:
        return Verification(result.checked, None, "the file's SHA-256 differs from the manifest's")
    return result


# --- the auditor's command line --------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Verify one export from the command line; the exit status is 0 only when it is intact."""
    parser = argparse.ArgumentParser(
        prog="python -m security.audit.offline",
        description="Verify an audit export offline against its signed manifest and the audit public keys.",
    )
    parser.add_argument("export", type=Path, help="the export file")
    parser.add_argument("manifest", type=Path, help="its manifest (FILE.manifest.json)")
    parser.add_argument("public_keys", type=Path, help="the audit public keys (PEM), obtained independently")
    parser.add_argument(
        "witness", type=Path, nargs="?", help="optional: the witness's signed statements of the log (JSON Lines)"
    )
    arguments = parser.parse_args(argv)
    for path in (arguments.export, arguments.manifest, arguments.public_keys, arguments.witness):
        if path is not None and not path.is_file():
            parser.error(f"{path} is not a file")
    what = f"export {arguments.export.name}"
    try:
        result = verify_files(arguments.export, arguments.manifest, arguments.public_keys, witness=arguments.witness)
    except ValueError as error:  # a manifest or key file that does not parse (undecodable text included)
        sys.stderr.write(f"{what} cannot be checked: {error}\n")
        return 1
    (sys.stdout if result.intact else sys.stderr).write(result.verdict(what) + "\n")
    return 0 if result.intact else 1


if __name__ == "__main__":
    raise SystemExit(main())
