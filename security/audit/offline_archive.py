"""Verifying an opened offboarding archive offline: its files, its signed manifest and the auditor's public keys.

An archive (built by :mod:`security.audit.archives` when a community is
offboarded, opened with ``manage.py audit_archive_open``) is a directory::

    audit.jsonl                   the community's whole audit log, an ordinary export
    audit.jsonl.manifest.json     its signed export manifest
    checkpoints.jsonl             every signed checkpoint of the log
    disclosures.json              the accounting of disclosures of every participant the log names
    purge-statements.jsonl        the log's signed purge statements, when the log kept any
    audit-keys.pem                the public keys when it was made (a convenience: check with your own copy)
    archive.manifest.json         what the archive holds, with each file's SHA-256, signed

The audit log itself verifies with the standard verifier, unchanged::

    python -m security.audit.offline DIR/audit.jsonl DIR/audit.jsonl.manifest.json audit-keys.pem

and this module checks the rest around it, calling the same verifier::

    python -m security.audit.offline_archive DIR audit-keys.pem
    # archive alpha: 41210 entries intact, 42 signed checkpoints verified

It checks the archive manifest's signature, every file's SHA-256 and size,
the export (with :func:`security.audit.offline.verify_files`), that the export
is the whole log (nothing before or after it, up to the archive's head), every
checkpoint's signature and its hash against the entry at its sequence, and
that every entry of the accounting points to an allowed event of the log that
names that participant. Like :mod:`security.audit.offline` it needs no Django,
no settings, no database and no network. It exits 0 when everything checks
out, 1 otherwise (the reason on standard error), 2 for wrong arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from security.audit.formats import jsonl_read
from security.audit.offline import (
    ChainBroken,
    Verification,
    load_manifest,
    load_public_keys_pem,
    manifest_body,
    signed_statement,
    verify_files,
    verify_signed,
)

ARCHIVE_TYPE = "audit-archive/v1"
ACCOUNTING_TYPE = "audit-archive-accounting/v1"
MANIFEST_NAME = "archive.manifest.json"
EXPORT_NAME = "audit.jsonl"
EXPORT_MANIFEST_NAME = "audit.jsonl.manifest.json"
CHECKPOINTS_NAME = "checkpoints.jsonl"
DISCLOSURES_NAME = "disclosures.json"
ACCOUNTING_RECORDS_NAME = "accounting-records.json"  # since the accounting kept requests and copies
PURGE_STATEMENTS_NAME = "purge-statements.jsonl"
KEYS_NAME = "audit-keys.pem"
REQUIRED = frozenset({EXPORT_NAME, EXPORT_MANIFEST_NAME, CHECKPOINTS_NAME, DISCLOSURES_NAME})
MEMBERS = REQUIRED | {PURGE_STATEMENTS_NAME, KEYS_NAME, MANIFEST_NAME, ACCOUNTING_RECORDS_NAME}


class ArchiveBroken(Exception):  # a verdict, not an error of the program
    """The archive does not check out."""


def file_digest(path: Path) -> dict[str, Any]:
    """A file's SHA-256 (hex) and size, as the archive manifest lists them."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return {"sha256": digest.hexdigest(), "bytes": size}


def verify_archive(directory: Path, public_key: Path) -> Verification:
    """Verify an opened archive with the auditor's copy of the public keys (PEM); no database, no network."""
    try:
        return _verify_archive(directory, public_key)
    except ArchiveBroken as broken:
        return Verification(0, None, str(broken))
    except ChainBroken as broken:
        return Verification(0, broken.sequence, broken.problem)
    except (OSError, KeyError, TypeError, ValueError) as error:  # FormatError and JSON errors included
        return Verification(0, None, f"the archive is malformed ({type(error).__name__}: {error})")


def _manifest(directory: Path, keys: Mapping[str, Ed25519PublicKey]) -> dict[str, Any]:
    manifest = load_manifest((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    signature, body = manifest.get("signature"), manifest_body(manifest)
    if (
        not isinstance(signature, dict)
        or body is None
        or not verify_signed(body, str(signature.get("signature", "")), str(signature.get("key_id", "")), keys)
    ):
        raise ArchiveBroken("the archive manifest's signature does not verify with the given public keys")
    if manifest.get("type") != ARCHIVE_TYPE:
        raise ArchiveBroken(f"not an audit archive manifest (type {manifest.get('type')!r})")
    files = manifest["files"]
    if not isinstance(files, dict) or not files.keys() >= REQUIRED or not files.keys() <= MEMBERS:
        raise ArchiveBroken("the archive manifest does not list the files of an archive")
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            raise ArchiveBroken(f"{name} is missing")
        if file_digest(path) != expected:
            raise ArchiveBroken(f"{name}: its SHA-256 or size differs from the archive manifest's")
    return manifest


def _whole_log(directory: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The export's manifest, once it is shown to be the community's whole log up to the archive's head."""
    export = load_manifest((directory / EXPORT_MANIFEST_NAME).read_text(encoding="utf-8"))
    community, head = manifest["community"], manifest["head_sequence"]
    if export.get("log") != community:
        raise ArchiveBroken(f"the export is of log {export.get('log')!r}, not of community {community!r}")
    if export["format"] != "jsonl" or export["file"] != EXPORT_NAME:
        raise ArchiveBroken("the export is not the archive's audit.jsonl")
    if export["start"]["before"] is not None:
        raise ArchiveBroken("the export leaves out events before its range")
    if export["end"] is not None and export["end"]["after"] is not None:
        raise ArchiveBroken("the export leaves out events after its range")
    if export["head_sequence"] != head or export["last_sequence"] != head or export["count"] != manifest["events"]:
        raise ArchiveBroken(f"the export ends at #{export['last_sequence']}, the archive's log at #{head}")
    return export


def _checkpoints(directory: Path, community: str, keys: Mapping[str, Ed25519PublicKey]) -> dict[int, str]:
    """Every archived checkpoint's hash by sequence, each signature checked and each naming this log."""
    hashes: dict[int, str] = {}
    with (directory / CHECKPOINTS_NAME).open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            document = json.loads(line)
            at = document.get("sequence") if isinstance(document, dict) else None
            statement = signed_statement(
                document["statement"],
                document["signature"],
                document["key_id"],
                keys,
                at=at if isinstance(at, int) else None,
            )
            if statement.get("log") != community or statement["sequence"] != at:
                raise ChainBroken(at, "a checkpoint of another log, or at another sequence, than it claims")
            hashes[statement["sequence"]] = statement["entry_hash"]
    return hashes


def _accounting(directory: Path, community: str) -> dict[int, set[str]]:
    """For each audit sequence the accounting cites, the pseudonyms it cites it for."""
    document = json.loads((directory / DISCLOSURES_NAME).read_text(encoding="utf-8"))
    if document.get("type") != ACCOUNTING_TYPE or document.get("community") != community:
        raise ArchiveBroken("disclosures.json is not this community's accounting")
    cited: dict[int, set[str]] = {}
    for pseudonym, entries in document["participants"].items():
        for entry in entries:
            if entry.get("audit_sequence") is not None:  # a disclosure recorded off the platform cites no event
                cited.setdefault(int(entry["audit_sequence"]), set()).add(pseudonym)
    return cited


def _accounting_records(directory: Path, community: str, manifest: Mapping[str, Any]) -> None:
    """The accounting's records (requests, copies provided, suspensions), where the archive keeps them, are its own.

    Each copy's text must still hash to the SHA-256 it was provided with.
    """
    if ACCOUNTING_RECORDS_NAME not in manifest["files"]:
        return  # archives made before the accounting kept records
    document = json.loads((directory / ACCOUNTING_RECORDS_NAME).read_text(encoding="utf-8"))
    if document.get("community") != community:
        raise ArchiveBroken(f"{ACCOUNTING_RECORDS_NAME} is not this community's")
    for copy in document.get("copies", []):
        if hashlib.sha256(str(copy["content"]).encode("utf-8")).hexdigest() != copy["sha256"]:
            raise ArchiveBroken(f"{ACCOUNTING_RECORDS_NAME}: a copy provided ({copy['id']}) differs from its SHA-256")


def _cross_check(directory: Path, checkpoints: dict[int, str], cited: dict[int, set[str]], first: int) -> None:
    """Walk the log once: checkpoint hashes match their entries, cited events exist and name their participant."""
    with (directory / EXPORT_NAME).open(encoding="utf-8") as handle:
        for entry in jsonl_read(handle):
            sequence = int(entry["sequence"])
            expected = checkpoints.pop(sequence, None)
            if expected is not None and expected != entry["entry_hash"]:
                raise ChainBroken(sequence, "differs from the signed checkpoint at this sequence")
            pseudonyms = cited.pop(sequence, None)
            if pseudonyms is not None and (
                entry["outcome"] != "allow" or not pseudonyms <= set(entry["participant_pseudonyms"])
            ):
                raise ChainBroken(sequence, "the accounting cites an event that is not an allowed access to them")
    beyond = sorted(sequence for sequence in checkpoints if sequence >= first)
    if beyond:
        raise ChainBroken(beyond[0], "a checkpoint at a sequence the log does not hold")
    if cited:
        raise ChainBroken(min(cited), "the accounting cites an event the log does not hold")


def _verify_archive(directory: Path, public_key: Path) -> Verification:
    keys = load_public_keys_pem(public_key.read_text(encoding="ascii"))
    if not keys:
        raise ArchiveBroken(f"{public_key.name} holds no Ed25519 public key")
    manifest = _manifest(directory, keys)
    community = str(manifest["community"])
    export = _whole_log(directory, manifest)
    result = verify_files(directory / EXPORT_NAME, directory / EXPORT_MANIFEST_NAME, public_key)
    if not result.intact:
        return result
    checkpoints = _checkpoints(directory, community, keys)
    if len(checkpoints) != manifest["checkpoints"]:
        raise ArchiveBroken(
            f"checkpoints.jsonl holds {len(checkpoints)} checkpoints, the manifest says {manifest['checkpoints']}"
        )
    _accounting_records(directory, community, manifest)
    first = export["first_sequence"] if export["first_sequence"] is not None else export["last_sequence"] + 1
    _cross_check(directory, dict(checkpoints), _accounting(directory, community), first)
    return Verification(result.checked, checkpoints=len(checkpoints))


def main(argv: Sequence[str] | None = None) -> int:
    """Verify one opened archive from the command line; the exit status is 0 only when it is intact."""
    parser = argparse.ArgumentParser(
        prog="python -m security.audit.offline_archive",
        description="Verify an opened offboarding archive offline against its signed manifest and the audit keys.",
    )
    parser.add_argument("directory", type=Path, help="the directory audit_archive_open wrote")
    parser.add_argument("public_keys", type=Path, help="the audit public keys (PEM), obtained independently")
    arguments = parser.parse_args(argv)
    if not (arguments.directory / MANIFEST_NAME).is_file():
        parser.error(f"{arguments.directory} holds no {MANIFEST_NAME}")
    if not arguments.public_keys.is_file():
        parser.error(f"{arguments.public_keys} is not a file")
    try:
        manifest = json.loads((arguments.directory / MANIFEST_NAME).read_text(encoding="utf-8"))
        what = f"archive {manifest.get('community', '?') if isinstance(manifest, dict) else '?'}"
    except ValueError:
        what = f"archive {arguments.directory.name}"
    result = verify_archive(arguments.directory, arguments.public_keys)
    (sys.stdout if result.intact else sys.stderr).write(result.verdict(what) + "\n")
    return 0 if result.intact else 1


if __name__ == "__main__":
    raise SystemExit(main())
