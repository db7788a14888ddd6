"""Verifying an export offline: the file, its signed manifest and the auditor's copy of the public keys, nothing else.

It trusts only the public keys the auditor obtained on their own
(``GET /api/v1/audit/keys/``, ``audit_keys``). It checks the manifest's
signature, walks every entry with :class:`Walker` (entries in full, entries a
proof skips folded in by their leaf hash), pins the walk to the signed
checkpoints at both ends and compares the file's SHA-256. Any failure names
the first sequence number that does not check out.

No Django, no settings, no database, no network: this module imports the
standard library, ``cryptography``, :mod:`core.canonical` and the pure
:mod:`security.audit.hashing` and :mod:`security.audit.formats` (which need
``orjson``) only, and a test runs it with Django unimportable. An auditor runs
it from a copy of the project's source, without its settings or its other
dependencies::

    python -m security.audit.offline alpha-2026h1.jsonl alpha-2026h1.jsonl.manifest.json audit-keys.pem
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
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.canonical import canonical_text
from security.audit.formats import FormatError, csv_read, fhir_read, jsonl_read
from security.audit.hashing import GENESIS, entry_hash, link

STATEMENT_TYPE = "audit-checkpoint/v1"


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

    def verdict(self, what: str) -> str:
        """One line for a person: ``what`` intact with the counts, or broken at the first bad sequence."""
        if self.intact:
            return f"{what}: {self.checked} entries intact, {self.checkpoints} signed checkpoints verified"
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


def parse_statement(text: str) -> dict[str, Any]:
    """A checkpoint statement's fields, strictly (ValueError when it is not one)."""
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("type") != STATEMENT_TYPE:
        raise ValueError("not an audit checkpoint statement")
    if not isinstance(document.get("sequence"), int) or not isinstance(document.get("entry_hash"), str):
        raise ValueError("a checkpoint statement without sequence or hash")
    return document


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


# --- an export and its manifest ------------------------------------------------------


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
    arguments = parser.parse_args(argv)
    for path in (arguments.export, arguments.manifest, arguments.public_keys):
        if not path.is_file():
            parser.error(f"{path} is not a file")
    what = f"export {arguments.export.name}"
    try:
        result = verify_files(arguments.export, arguments.manifest, arguments.public_keys)
    except ValueError as error:  # a manifest or key file that does not parse (undecodable text included)
        sys.stderr.write(f"{what} cannot be checked: {error}\n")
        return 1
    (sys.stdout if result.intact else sys.stderr).write(result.verdict(what) + "\n")
    return 0 if result.intact else 1


if __name__ == "__main__":
    raise SystemExit(main())
