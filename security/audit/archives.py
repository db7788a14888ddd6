"""Offboarding archives: a community's whole audit trail, signed, sealed under the archive key, kept six years.

Offboarding destroys the community's key (crypto-shredding) and, after the
grace period, drops its schema, audit log included. HIPAA keeps that record
for six years (164.316(b)(2); the accounting, 164.528(d) and 164.530(j)), so
before anything is destroyed :func:`audit_archive_create` writes, in the
community's schema:

- the whole audit log as an ordinary JSON Lines export with its signed
  manifest (:func:`security.audit.exports.export_to_path`), so the standard
  offline verifier checks it unchanged;
- every signed checkpoint, and the signed purge statements when the log has
  them;
- the accounting of disclosures of every participant the log names or an
  officer recorded a disclosure of (recipients resolved now, while the users
  exist; the basis of each entry, exempt ones included and labelled), and
  the accounting's own records: its requests, every copy provided (its exact
  text), suspensions and disclosures recorded off the platform, from the
  research apps through the ``AUDIT_ARCHIVE_ACCOUNTING`` hook;
- the audit public keys, and an archive manifest listing each file's SHA-256,
  signed by the audit signing key.

Those files go into a tar stream sealed in AES-256-GCM chunks (the
construction of the de-identified exports' sealed files) under a fresh data
key wrapped by the key provider's *archive key*, which belongs to no
community and which offboarding never destroys. The sealed file is stored in
the archive store (:mod:`security.audit.archive_storage`) with a retain-until
date ``AUDIT_RETENTION_DAYS`` ahead. :func:`audit_archive_verify` opens the
stored archive again and checks it with the offline verifier
(:mod:`security.audit.offline_archive`) against the provider's published
keys, and against the schema while it is still there: purging requires it.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.apps import apps
from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.utils.module_loading import import_string
from django_tenants.utils import schema_context, schema_exists

from core.canonical import canonical_text
from security.audit.archive_storage import ArchiveMissing, archive_key, get_archive_storage
from security.audit.checkpoints import public_keys_pem, sign_document
from security.audit.exports import export_to_path
from security.audit.hashing import format_time
from security.audit.models import AuditEvent, Checkpoint
from security.audit.offline_archive import (
    ACCOUNTING_RECORDS_NAME,
    ACCOUNTING_TYPE,
    ARCHIVE_TYPE,
    CHECKPOINTS_NAME,
    DISCLOSURES_NAME,
    EXPORT_NAME,
    KEYS_NAME,
    MANIFEST_NAME,
    MEMBERS,
    PURGE_STATEMENTS_NAME,
    file_digest,
    verify_archive,
)
from security.audit.sequencer import audit_chain
from vault.errors import KeyDestroyed, KeyServiceUnavailable
from vault.providers import Archiver, get_provider

MAGIC = b"CGWA1"
CHUNK_BYTES = 1 << 20
MAX_CHUNK_BYTES = 16 * 1024 * 1024  # a forged length must not make the reader allocate without bound
NONCE_BYTES, TAG_BYTES = 12, 16
_LENGTH = struct.Struct(">I")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ArchiveError(Exception):
    """An archive could not be made, found, opened or verified; the message says why, for an operator."""


@dataclass(frozen=True)
class Archive:
    """A stored archive: its key in the archive store and its (signed) manifest."""

    key: str
    manifest: dict[str, Any]


# --- sealing ---------------------------------------------------------------------------


def _chunk_aad(community: str, index: int, *, last: bool) -> bytes:
    return f"audit-archive|{community}|{index}|{int(last)}".encode()


def _data_key(community: str, wrapped: str | None = None) -> tuple[str, AESGCM]:
    """A fresh data key wrapped by the archive key (or the one ``wrapped`` names), bound to the community."""
    provider: Archiver = get_provider()
    name = settings.AUDIT_ARCHIVE_KEY_NAME
    if wrapped is None:
        provider.ensure_archive_key(name)
        wrapped = provider.generate_archive_data_key(name, community).ciphertext
    return wrapped, AESGCM(provider.unwrap_archive_data_key(name, community, wrapped))


def _seal(source: IO[bytes], sink: IO[bytes], *, community: str) -> None:
    """``MAGIC ‖ len ‖ wrapped key`` then chunks ``len ‖ nonce ‖ ciphertext ‖ tag``, the last one marked."""
    wrapped, cipher = _data_key(community)
    header = wrapped.encode("ascii")
    sink.write(MAGIC + _LENGTH.pack(len(header)) + header)
    index, chunk = 0, source.read(CHUNK_BYTES)
    while True:
        following = source.read(CHUNK_BYTES)
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + cipher.encrypt(nonce, chunk, _chunk_aad(community, index, last=not following))
        sink.write(_LENGTH.pack(len(sealed)) + sealed)
        if not following:
            return
        index, chunk = index + 1, following


def _read(source: IO[bytes], size: int, what: str) -> bytes:
    data = bytearray()
    while len(data) < size:
        part = source.read(size - len(data))
        if not part:
            raise ArchiveError(f"the sealed archive is cut short ({what})")
        data += part
    return bytes(data)


def _unsealed(source: IO[bytes], *, community: str) -> Iterator[bytes]:
    """The plaintext, chunk by chunk; any change, cut, reordering or trailing data raises ArchiveError."""
    if _read(source, len(MAGIC), "header") != MAGIC:
        raise ArchiveError("not a sealed audit archive")
    (length,) = _LENGTH.unpack(_read(source, _LENGTH.size, "header"))
    if not 0 < length <= 4096:  # noqa: PLR2004 - a wrapped key is a few dozen bytes
        raise ArchiveError("the sealed archive's header is malformed")
    try:
        _, cipher = _data_key(community, _read(source, length, "header").decode("ascii"))
    except (KeyDestroyed, UnicodeDecodeError) as error:
        raise ArchiveError("the archive's data key does not open with the archive key for this community") from error
    index = 0
    while prefix := source.read(_LENGTH.size):
        (size,) = _LENGTH.unpack(prefix + _read(source, _LENGTH.size - len(prefix), "chunk"))
        if not NONCE_BYTES + TAG_BYTES <= size <= MAX_CHUNK_BYTES:
            raise ArchiveError(f"chunk {index} of the sealed archive has an impossible length")
        sealed = _read(source, size, f"chunk {index}")
        for last in (False, True):
            try:
                plaintext = cipher.decrypt(
                    sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _chunk_aad(community, index, last=last)
                )
            except InvalidTag:
                continue
            break
        else:
            raise ArchiveError(f"chunk {index} of the sealed archive was altered or moved")
        yield plaintext
        if last:
            if source.read(1):
                raise ArchiveError("data follows the last chunk of the sealed archive")
            return
        index += 1
    raise ArchiveError("the sealed archive ends before its last chunk")


class _ChunkReader(io.RawIOBase):
    """A file over an iterator of byte chunks, for ``tarfile``'s stream mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._pending = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size], self._pending = self._pending[:size], self._pending[size:]
        return size


# --- building --------------------------------------------------------------------------


def _write_checkpoints(path: Path) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for checkpoint in Checkpoint.objects.order_by("sequence").iterator():
            document = {
                "sequence": checkpoint.sequence,
                "statement": checkpoint.statement,
                "key_id": checkpoint.key_id,
                "signature": checkpoint.signature,
            }
            handle.write(canonical_text(document) + "\n")
            count += 1
    return count


def _write_purge_statements(path: Path) -> int | None:
    """The log's signed purge statements, row by row, if this version of the log keeps any (None otherwise)."""
    # Signed purge statements are being added to the audit app; until a model of that name exists, none are kept.
    model = apps.all_models["audit"].get("purgestatement")
    if model is None:
        return None
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for row in model._default_manager.order_by("pk").values():
            handle.write(json.dumps(row, sort_keys=True, default=_json_value) + "\n")
            count += 1
    return count


def _json_value(value: Any) -> str:
    if isinstance(value, datetime):
        return format_time(value)
    return str(value)


def _pseudonyms() -> list[str]:
    """Every participant the log names (one who never appears in it was never disclosed)."""
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    with connection.cursor() as cursor:
        statement = f"SELECT DISTINCT unnest(participant_pseudonyms) FROM {table} ORDER BY 1"  # noqa: S608 # nosec B608
        cursor.execute(statement)  # the model's own table name, quoted: no input
        return [row[0] for row in cursor.fetchall()]


class ArchivedAccounting(Protocol):
    """What ``AUDIT_ARCHIVE_ACCOUNTING`` names (the research apps' builder; security never imports them)."""

    def __call__(
        self, pseudonyms: Sequence[str], /, *, now: datetime
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
        """Each participant's accounting up to ``now`` (by pseudonym), and the accounting's own records."""


def _write_accounting(members: Path, *, community: str, now: datetime) -> tuple[int, int]:
    builder: ArchivedAccounting = import_string(settings.AUDIT_ARCHIVE_ACCOUNTING)
    participants, records = builder(_pseudonyms(), now=now)
    document = {
        "type": ACCOUNTING_TYPE,
        "community": community,
        "generated_at": format_time(now),
        "lookback_days": settings.DISCLOSURE_LOOKBACK_DAYS,
        "participants": participants,
    }
    (members / DISCLOSURES_NAME).write_text(
        json.dumps(document, indent=1, sort_keys=True, default=_json_value) + "\n", encoding="utf-8"
    )
    (members / ACCOUNTING_RECORDS_NAME).write_text(
        json.dumps({**records, "community": community}, indent=1, sort_keys=True, default=_json_value) + "\n",
        encoding="utf-8",
    )
    return len(participants), sum(len(entries) for entries in participants.values())


def _build(members: Path, *, community: str, now: datetime) -> dict[str, Any]:
    """Write every member file into ``members`` and return the signed archive manifest (also written there)."""
    audit_chain()
    written = export_to_path(members / EXPORT_NAME, kind="jsonl", since=_EPOCH, until=now)
    export = written.manifest
    if export["end"] is not None and export["end"]["after"] is not None:
        raise ArchiveError(
            f"the log of {community} holds events timed after now (from #{export['end']['after']['sequence']}): "
            "it cannot be archived whole; check it with audit_verify"
        )
    checkpoints = _write_checkpoints(members / CHECKPOINTS_NAME)
    purge_statements = _write_purge_statements(members / PURGE_STATEMENTS_NAME)
    participants, disclosed = _write_accounting(members, community=community, now=now)
    (members / KEYS_NAME).write_text(public_keys_pem(community), encoding="ascii")
    files = sorted(name for name in MEMBERS - {MANIFEST_NAME} if (members / name).is_file())
    manifest: dict[str, Any] = {
        "type": ARCHIVE_TYPE,
        "community": community,
        "created_at": format_time(now),
        "retention_days": settings.AUDIT_RETENTION_DAYS,
        "retain_until": format_time(now + timedelta(days=settings.AUDIT_RETENTION_DAYS)),
        "head_sequence": export["head_sequence"],
        "events": export["count"],
        "checkpoints": checkpoints,
        "purge_statements": purge_statements,
        "participants": participants,
        "disclosures": disclosed,
        "files": {name: file_digest(members / name) for name in files},
    }
    signed = sign_document(manifest, community)  # the community's own signing key, as its checkpoints
    manifest["signature"] = {"key_id": signed.key_id, "signature": signed.signature}
    (members / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def _chained_now() -> datetime:
    """The archive's time: the database's clock once what is staged is chained (the clock the chain dates by).

    Taken after chaining, so every event staged before the archive began is
    in it and none is dated after it, whichever host's clock runs ahead.
    """
    audit_chain()
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        moment: datetime = cursor.fetchone()[0]
    return moment


def audit_archive_create(*, community: str) -> Archive:
    """Archive the community's audit trail (its schema must still exist); the stored archive, verified.

    Needs the audit signing key and the archive key, never the community's
    key: it may run before or after that key is destroyed.

    Raises:
        ArchiveError: the schema is gone, the log cannot be archived whole, or
            the stored archive does not verify.
        KeyServiceUnavailable: the key provider cannot sign or seal.
    """
    if not schema_exists(community):
        raise ArchiveError(f"community {community} has no schema left to archive")
    with schema_context(community):
        now = _chained_now()
    key = archive_key(community=community, created_at=now)
    with tempfile.TemporaryDirectory(prefix="cgw-archive-") as work:  # 0700
        members, sealed = Path(work) / "members", Path(work) / "archive.tar.sealed"
        members.mkdir(mode=0o700)
        with schema_context(community):
            manifest = _build(members, community=community, now=now)
        with tempfile.TemporaryFile() as plain:
            with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for name in sorted(path.name for path in members.iterdir()):
                    tar.add(members / name, arcname=name, recursive=False)
            plain.seek(0)
            with sealed.open("wb") as sink:
                _seal(plain, sink, community=community)
        get_archive_storage().put(key, sealed, retain_until=now + timedelta(days=settings.AUDIT_RETENTION_DAYS))
    problem = audit_archive_verify(community=community, key=key)
    if problem:
        raise ArchiveError(f"the archive of {community} was stored but does not verify: {problem}")
    return Archive(key, manifest)


# --- opening and verifying --------------------------------------------------------------


def audit_archive_open(*, community: str, to: Path, key: str | None = None) -> Archive:
    """Unseal the community's newest archive (or ``key``) into the directory ``to`` (created 0700, must be empty).

    Raises:
        ArchiveError: no archive, or it does not open (altered, cut short, not this community's).
        KeyServiceUnavailable: the key provider is unreachable.
    """
    storage = get_archive_storage()
    key = key or storage.latest(community)
    if key is None:
        raise ArchiveError(f"the archive store holds no archive of {community}")
    to.mkdir(parents=True, exist_ok=True, mode=0o700)
    if any(to.iterdir()):
        raise ArchiveError(f"{to} is not empty")
    try:
        source = storage.reader(key)
    except ArchiveMissing as error:
        raise ArchiveError(f"the archive store holds no {key}") from error
    with (
        source,
        tarfile.open(fileobj=io.BufferedReader(_ChunkReader(_unsealed(source, community=community))), mode="r|") as tar,
    ):
        for member in tar:
            if member.name not in MEMBERS or not member.isfile() or (to / member.name).exists():
                raise ArchiveError(f"the archive holds an unexpected entry {member.name!r}")
            extracted = tar.extractfile(member)
            if extracted is None:
                raise ArchiveError(f"the archive's entry {member.name!r} cannot be read")
            descriptor = os.open(to / member.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                while chunk := extracted.read(CHUNK_BYTES):
                    handle.write(chunk)
    if not (to / MANIFEST_NAME).is_file():
        raise ArchiveError("the archive holds no manifest")
    manifest = json.loads((to / MANIFEST_NAME).read_text(encoding="utf-8"))
    return Archive(key, manifest)


def _log_head(community: str) -> int:
    with schema_context(community):
        audit_chain()
        head: int | None = AuditEvent.objects.aggregate(head=Max("sequence"))["head"]
    return head or 0


def audit_archive_verify(*, community: str, key: str | None = None) -> str:
    """Why the community's newest archive (or ``key``) cannot be relied on; ``""`` when it verifies.

    Opens the stored archive with the archive key, checks it offline against
    the audit keys the provider publishes (not the copy inside the archive),
    checks that it is this community's, and, while the schema exists, that
    the log holds nothing the archive does not.
    """
    with tempfile.TemporaryDirectory(prefix="cgw-archive-check-") as work:
        try:
            archive = audit_archive_open(community=community, to=Path(work) / "archive", key=key)
        except (ArchiveError, tarfile.TarError, KeyServiceUnavailable, OSError, ValueError) as error:
            return str(error) or type(error).__name__
        keys = Path(work) / "audit-keys.pem"
        keys.write_text(public_keys_pem(community), encoding="ascii")
        result = verify_archive(Path(work) / "archive", keys)
        if not result.intact:
            return result.verdict(f"archive {archive.key}")
    if archive.manifest.get("community") != community:
        return f"archive {archive.key} is of community {archive.manifest.get('community')!r}"
    if schema_exists(community):
        head = _log_head(community)
        if head != archive.manifest["head_sequence"]:
            return (
                f"archive {archive.key} holds the log up to #{archive.manifest['head_sequence']}, the schema up to "
                f"#{head}: archive it again (audit_archive_create --community {community})"
            )
    return ""
