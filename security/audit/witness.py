"""The witness: a copy of every signed checkpoint and purge statement where the database cannot rewrite it.

Hash chain and checkpoints live in the database, so someone who can write the
database as its owner could cut the tail (and the checkpoints vouching for
it), wipe a log or rebuild a range. The witness keeps each signed statement
outside, append-only, and both verifiers check the log against it (see
:mod:`security.audit.live` and :mod:`security.audit.offline`).

:class:`AuditWitness` is the contract; ``AUDIT_WITNESS`` picks one of two:

- ``s3`` (:class:`S3Witness`, production): one object per statement in a
  bucket with Object Lock, put with ``ObjectLockMode=COMPLIANCE`` and a
  retain-until date the audit retention ahead, and ``If-None-Match: *`` so
  nothing is ever overwritten. Nobody, the bucket's owner included, can delete
  or shorten it before then.
- ``local`` (:class:`LocalWitness`, development and tests): one read-only
  file per statement under ``AUDIT_WITNESS_DIR``, created with ``O_EXCL``.

Keys are ``<log>/<kind>/<sequence, 20 digits>.json``; each holds one JSON
line (:class:`~security.audit.offline.WitnessedStatement`), so the files of a
log concatenated are the witness file the offline verifier takes.

Publishing happens after the statement's transaction commits. A witness that
cannot take a statement leaves it in the database unwitnessed (a warning,
without the statement); every checkpoint run publishes what is still missing
(:func:`witness_publish_pending`), and the verifiers name the checkpoints
not witnessed yet.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django_tenants.utils import schema_context

from core.s3 import S3Bucket
from core.schema import tenant_connection
from security.audit.models import Checkpoint, PurgeStatement, WitnessKind, WitnessReceipt
from security.audit.offline import WITNESS_KINDS, WitnessedStatement

logger = logging.getLogger(__name__)

_LOG = re.compile(r"[a-z][a-z0-9_]{2,62}")


class WitnessUnavailable(Exception):
    """The witness cannot be reached or refused the call (retry later)."""


class WitnessConflict(Exception):
    """The witness already holds a different statement under that log, kind and sequence (never overwritten)."""


def witness_key(log: str, kind: str, sequence: int) -> str:
    """Where a statement lives in the witness: one folder per log and kind, sequences sorting as numbers."""
    if not _LOG.fullmatch(log) or kind not in WITNESS_KINDS or sequence < 0:
        raise ValueError("not a valid witness key")
    return f"{log}/{kind}/{sequence:020d}.json"


def _sequence_of(name: str) -> int | None:
    stem = name.rsplit("/", 1)[-1].removesuffix(".json")
    return int(stem) if stem.isdigit() else None


class AuditWitness(Protocol):
    """An append-only store of signed statements, by log, kind and sequence.

    Nothing once published can be changed or removed through it; publishing
    the same statement again is a no-op, a different one under the same key
    raises :class:`WitnessConflict`. Faults raise :class:`WitnessUnavailable`.
    """

    def publish(self, log: str, sequence: int, item: WitnessedStatement) -> None:
        """Keep ``item`` for good under ``log``, its kind and ``sequence``."""
        ...

    def sequences(self, log: str, kind: str) -> list[int]:
        """The sequences the witness holds a statement of ``kind`` for in ``log``, ascending."""
        ...

    def read(self, log: str, kind: str, sequence: int) -> WitnessedStatement | None:
        """The statement under that key, or None."""
        ...


class LocalWitness:
    """Read-only files under a directory, each created once with ``O_EXCL`` (development and tests).

    The service could still delete them as the files' owner: this is the
    embedded stand-in for the bucket, and production settings refuse it.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def publish(self, log: str, sequence: int, item: WitnessedStatement) -> None:
        """Create the file; if it exists, it must hold the same statement."""
        path = self.root / witness_key(log, item.kind, sequence)
        body = item.line().encode("utf-8")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        except FileExistsError:
            if path.read_bytes() != body:
                raise WitnessConflict(witness_key(log, item.kind, sequence)) from None
            return
        except OSError as error:
            raise WitnessUnavailable(type(error).__name__) from error
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())

    def sequences(self, log: str, kind: str) -> list[int]:
        """The files' sequences."""
        folder = self.root / witness_key(log, kind, 0).rsplit("/", 1)[0]
        if not folder.is_dir():
            return []
        return sorted(number for path in folder.iterdir() if (number := _sequence_of(path.name)) is not None)

    def read(self, log: str, kind: str, sequence: int) -> WitnessedStatement | None:
        """The file's statement."""
        path = self.root / witness_key(log, kind, sequence)
        try:
            return WitnessedStatement.from_line(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None


class S3Witness(S3Bucket):
    """Objects in a bucket with Object Lock: compliance mode, retained for the audit retention, never overwritten.

    The client is boto3's, configured like the export storage's (credentials
    from the environment or the instance role).
    """

    def __init__(self, *, bucket: str, prefix: str = "", client: Any = None) -> None:
        unset = "the S3 witness needs AUDIT_WITNESS_S3_BUCKET (or AWS_S3_BUCKET)"
        super().__init__(bucket=bucket, prefix=prefix, client=client, unset=unset)

    @contextlib.contextmanager
    def _calls(self) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]  # noqa: PLC0415

        try:
            yield
        except (BotoCoreError, ClientError) as error:
            raise WitnessUnavailable(type(error).__name__) from error

    def retain_until(self, now: datetime | None = None) -> datetime:
        """How long the bucket must keep a statement published now: the audit retention."""
        return (now or timezone.now()) + timedelta(days=settings.AUDIT_RETENTION_DAYS)

    def publish(self, log: str, sequence: int, item: WitnessedStatement) -> None:
        """Put the object once (``If-None-Match: *``); an existing one must hold the same statement."""
        from botocore.exceptions import ClientError  # noqa: PLC0415

        key = self.prefix + witness_key(log, item.kind, sequence)
        body = item.line().encode("utf-8")
        try:
            with self._calls():
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentType="application/json",
                    IfNoneMatch="*",
                    ObjectLockMode="COMPLIANCE",
                    ObjectLockRetainUntilDate=self.retain_until(),
                    ChecksumAlgorithm="SHA256",  # Object Lock requires an integrity header on every put
                )
        except WitnessUnavailable as error:
            cause = error.__cause__
            if not isinstance(cause, ClientError) or cause.response.get("Error", {}).get("Code") not in {
                "PreconditionFailed",
                "ConditionalRequestConflict",
            }:
                raise
            existing = self.read(log, item.kind, sequence)
            if existing is None or existing.line().encode("utf-8") != body:
                raise WitnessConflict(witness_key(log, item.kind, sequence)) from None

    def sequences(self, log: str, kind: str) -> list[int]:
        """List the log's objects of ``kind``."""
        folder = self.prefix + witness_key(log, kind, 0).rsplit("/", 1)[0] + "/"
        found: list[int] = []
        with self._calls():
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder):
                found.extend(
                    number for item in page.get("Contents", []) if (number := _sequence_of(item["Key"])) is not None
                )
        return sorted(found)

    def read(self, log: str, kind: str, sequence: int) -> WitnessedStatement | None:
        """Get the object."""
        key = self.prefix + witness_key(log, kind, sequence)
        with self._calls():
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except self.client.exceptions.NoSuchKey:
                return None
        return WitnessedStatement.from_line(body.decode("utf-8"))


def get_witness() -> AuditWitness:
    """The witness ``AUDIT_WITNESS`` names."""
    if settings.AUDIT_WITNESS == "local":
        return LocalWitness(Path(settings.AUDIT_WITNESS_DIR))
    if settings.AUDIT_WITNESS == "s3":
        return S3Witness(bucket=settings.AUDIT_WITNESS_S3_BUCKET, prefix=settings.AUDIT_WITNESS_S3_PREFIX)
    raise ImproperlyConfigured(f"AUDIT_WITNESS must be local or s3, not {settings.AUDIT_WITNESS!r}")


def witness_log(
    log: str, witness: AuditWitness | None = None, *, through: int | None = None
) -> list[WitnessedStatement]:
    """What the witness vouches for in ``log``: its latest checkpoint and every purge statement.

    The latest checkpoint is enough: it pins the chain up to it, and every
    earlier one the chain reached through it. ``through`` takes the latest at
    or before that entry instead (a copy restored to a point in time ends
    there: what the witness saw later is what the restore lost).
    """
    witness = witness or get_witness()
    items: list[WitnessedStatement] = []
    checkpoints = [
        number for number in witness.sequences(log, WitnessKind.CHECKPOINT) if through is None or number <= through
    ]
    wanted = [(WitnessKind.CHECKPOINT.value, checkpoints[-1])] if checkpoints else []
    wanted += [(WitnessKind.PURGE.value, number) for number in witness.sequences(log, WitnessKind.PURGE)]
    for kind, number in wanted:
        item = witness.read(log, kind, number)
        if item is not None:
            items.append(item)
    return items


def _pending() -> Iterator[tuple[str, int, WitnessedStatement]]:
    """Checkpoints after the latest one witnessed (those before it the chain vouches for), and unwitnessed purges."""
    receipts = WitnessReceipt.objects.filter(kind=WitnessKind.CHECKPOINT).aggregate(latest=Max("sequence"))
    for checkpoint in Checkpoint.objects.filter(sequence__gt=receipts["latest"] or 0).order_by("sequence").iterator():
        yield (
            WitnessKind.CHECKPOINT,
            checkpoint.sequence,
            WitnessedStatement("checkpoint", checkpoint.statement, checkpoint.key_id, checkpoint.signature),
        )
    purged = set(WitnessReceipt.objects.filter(kind=WitnessKind.PURGE).values_list("sequence", flat=True))
    for purge in PurgeStatement.objects.exclude(through__in=purged).order_by("through").iterator():
        yield (
            WitnessKind.PURGE,
            purge.through,
            WitnessedStatement("purge", purge.statement, purge.key_id, purge.signature),
        )


def witness_publish_pending(witness: AuditWitness | None = None) -> int:
    """Publish the current schema's signed statements the witness has not taken yet; return how many it took.

    Call it only for committed statements (:func:`witness_after_commit`). A
    failure stops the round and is logged without the statement; the next
    round starts again from what is missing.
    """
    witness = witness or get_witness()
    log = tenant_connection().schema_name
    published = 0
    for kind, sequence, item in _pending():
        try:
            witness.publish(log, sequence, item)
        except WitnessConflict:
            logger.error("the audit witness holds a different %s #%s for %s: left as it is", kind, sequence, log)
            continue
        except WitnessUnavailable as error:
            logger.warning("the audit witness did not take %s #%s of %s (%s); retried next run", kind, sequence, log,
                           error)  # fmt: skip
            return published
        with contextlib.suppress(IntegrityError), transaction.atomic():
            WitnessReceipt.objects.create(kind=kind, sequence=sequence)
        published += 1
    return published


def witness_after_commit() -> None:
    """Once the current transaction commits (at once outside one), publish the schema's pending statements."""
    schema = tenant_connection().schema_name

    def publish() -> None:
        with schema_context(schema):
            witness_publish_pending()

    transaction.on_commit(publish, robust=True)
