"""One community's logical backup restored as a new community, in a schema of its own, sealed for it.

A sealed value is bound to its community (:func:`vault.crypto.associated_data`)
and opens only with that community's key, so a schema copied under another name
opens nothing. Restoring as a new community therefore:

1. restores the logical backup alone into a scratch database on the same server
   (:func:`operations.backups.logical.restore_community`);
2. unwraps the backed-up community's data keys, as they are in the backup, with
   that community's key in the key provider; a community whose key is gone
   (offboarded) restores nothing, as crypto-shredding promises;
3. creates the new community the ordinary way (:func:`tenants.lifecycle.community_create`:
   its schema migrated, its own key and data keys);
4. copies the research data (:data:`CARRIED`) into it row by row, every sealed
   value opened with the old key and sealed again under the new community's
   key, every blind index computed again with its index key, ids kept;
5. records the restore as the first event of the new community's audit chain
   and in the platform's log, naming the backup and the head of the old chain.

Steps 3 to 5 are one transaction: a failure leaves no community behind. The
source community, live or not, is never touched. Nothing that grants access is
restored (memberships, break-glass grants): members are added again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.apps import apps
from django.db import DatabaseError, connection, models, transaction
from django_tenants.utils import schema_context
from psycopg import conninfo, sql

from core.schema import use_public_schema
from operations.backups import postgres
from operations.backups.errors import BackupError
from operations.backups.logical import restore_community
from operations.backups.store import BackupStore
from security.audit.staging import audit_append
from tenants.lifecycle import community_create, community_create_check
from vault.errors import CiphertextIntegrityError, KeyDestroyed, KeyServiceUnavailable
from vault.fields import BlindIndexField, EncryptedField
from vault.keys import index_keys, write_key
from vault.models import KeyKind
from vault.providers import get_provider

# The research data a restore brings into the new community: one source of truth, which a test holds
# against every model of a community's schema (a new one must be put here or in LEFT).
CARRIED = (
    "studies.Study",
    "studies.StudyTeamMember",
    "participants.Participant",
    "consents.Consent",
    "observations.Observation",
    "accounting.AccountingRequest",
    "accounting.ProvidedAccounting",
    "accounting.RecordedDisclosure",
    "accounting.Suspension",
)
# What stays behind, and why.
LEFT = {
    "audit.AuditEvent": "the new chain starts with the restore; the old one is in the backup and its checkpoints",
    "audit.PendingEvent": "events of the old chain not yet chained",
    "audit.Checkpoint": "signed over the old chain",
    "audit.WitnessReceipt": "receipts for the old chain",
    "audit.PurgeStatement": "statements about the old chain",
    "audit.AuditExport": "exports of the old chain, their files sealed for the old community",
    "vault.DataKey": "the new community has keys of its own",
    "vault.RotationJob": "rotations of the old keys",
    "breakglass.BreakGlassGrant": "access is granted again, never restored",
    "breakglass.BreakGlassAlarm": "alarms of grants that are not restored",
    "exports.DeidentifiedExport": "export files are sealed for the old community",
    "exports.ExportDetermination": "determinations of exports that are not restored",
    "policy.DecisionRecord": "decisions on the old community's requests (their events stay in the old chain)",
}
SCRATCH_PREFIX = "rehome_"


@dataclass(frozen=True)
class Restored:
    """What a restore as a new community did."""

    slug: str
    source: str
    folder: str
    rows: dict[str, int]
    resealed: int
    seconds: float


def _column(field: models.Field[Any, Any]) -> str:
    return str(field.column)  # a concrete field's column is never None


@dataclass(frozen=True)
class _Table:
    """A carried table: its model, the columns the backup and the new schema share, where its values are."""

    model: type[models.Model]
    columns: list[str]
    pk: int
    sealed: list[tuple[EncryptedField, int]]
    indexes: list[tuple[BlindIndexField, int]]

    @classmethod
    def of(cls, model: type[models.Model], columns: list[str]) -> _Table:
        """The table of ``model`` as the backup has it (``columns``, in their order)."""
        position = {name: index for index, name in enumerate(columns)}
        fields = [(field, position[_column(field)]) for field in model._meta.concrete_fields
                  if _column(field) in position]  # fmt: skip
        return cls(
            model, columns, position[_column(model._meta.pk)],
            [(field, index) for field, index in fields if isinstance(field, EncryptedField)],
            [(field, index) for field, index in fields if isinstance(field, BlindIndexField)],
        )  # fmt: skip

    @property
    def name(self) -> str:
        return str(self.model._meta.db_table)


class _Resealer:
    """Opens a row's sealed values with the old community's keys and seals them under the new one's."""

    def __init__(self, source: str, target: str, data_keys: dict[int, AESGCM]) -> None:
        self.source, self.target, self.data_keys = source, target, data_keys
        self.version, self.cipher = write_key(target)
        self.index_version, self.index_key = index_keys(target)[0]
        self.count = 0

    def _data_key(self, version: int) -> AESGCM:
        if version not in self.data_keys:
            raise BackupError(f"a value names data key v{version}, which the backup lacks")
        return self.data_keys[version]

    def row(self, table: _Table, values: list[str | None]) -> list[str | None]:
        """``values`` (in ``table.columns`` order) with every sealed value and blind index made anew."""
        label, row = EncryptedField.model_label(table.model), str(values[table.pk])
        opened: dict[str, Any] = {}
        for field, index in table.sealed:
            token = values[index]
            if token is None:
                continue
            plaintext = field.open_for(self._data_key, token, community=self.source, model=label, row=row)
            opened[field.name] = field.from_bytes(plaintext)
            values[index] = str(field.seal_for(self.cipher, plaintext, community=self.target, model=label, row=row,
                                               version=self.version))  # fmt: skip
            self.count += 1
        for blind, index in table.indexes:
            value = opened.get(blind.source)
            values[index] = (
                None if value is None else blind.digest(bytes(self.index_key), self.index_version, str(value))
            )
        return values


def carried_models() -> list[type[models.Model]]:
    """The models of :data:`CARRIED`."""
    return [apps.get_model(label) for label in CARRIED]


def backup_of(store: BackupStore, source: str, folder: str | None = None) -> str:
    """``folder`` if it is one of ``source``'s complete logical backups (by default its newest).

    Only a folder the store lists for ``source``: never a path of the caller's
    making, nor another community's backup under this one's name.
    """
    folders = store.community_backups().get(source, [])
    if not folders:
        raise BackupError(f"no logical backup of {source!r} in {store.root}")
    if folder is None:
        return folders[-1]
    if folder not in folders:
        raise BackupError(f"{folder!r} is not a logical backup of {source!r} (see {store.root}/community/{source}/)")
    return folder


@contextmanager
def _scratch_database(server: str, name: str) -> Iterator[str]:
    """An empty database ``name`` on ``server`` for the block, then dropped."""
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with postgres.connect(server) as admin:
        admin.execute(drop)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield conninfo.make_conninfo(server, dbname=name)
    finally:
        with postgres.connect(server) as admin:
            admin.execute(drop)


def _data_keys(scratch: Any, source: str) -> dict[int, AESGCM]:
    """The backed-up community's data keys, unwrapped by its key in the provider."""
    rows = scratch.execute(
        sql.SQL("SELECT version, wrapped FROM {} WHERE kind = %s").format(sql.Identifier(source, "vault_datakey")),
        [str(KeyKind.DATA)],
    ).fetchall()
    provider = get_provider()
    try:
        return {int(version): AESGCM(provider.unwrap(source, str(wrapped))) for version, wrapped in rows}
    except KeyDestroyed as error:
        raise BackupError(f"{source}'s key is gone (offboarded?): its backups open nothing") from error
    except KeyServiceUnavailable as error:
        raise BackupError(f"the key provider did not unwrap {source}'s data keys: {error}") from error


def _columns(cursor: Any, schema: str, table: str) -> list[str]:
    rows = cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "ORDER BY ordinal_position",
        [schema, table],
    ).fetchall()
    return [str(name) for (name,) in rows]


def _tables(scratch: Any, source: str, target: str) -> list[_Table]:
    """The carried tables in the backup, refusing any column the new schema lacks (it would be lost)."""
    tables = []
    with connection.cursor() as cursor:
        for model in carried_models():
            name = model._meta.db_table
            backed_up, current = _columns(scratch, source, name), _columns(cursor.cursor, target, name)
            missing = [column for column in backed_up if column not in current]
            if not backed_up or missing:
                raise BackupError(
                    f"{name} of the backup does not fit this release ({missing or 'no such table'}): "
                    "restore it whole into a scratch cluster of its release instead"
                )
            tables.append(_Table.of(model, backed_up))
    return tables


def _copy(scratch: Any, table: _Table, source: str, target: str, resealer: _Resealer) -> int:
    """Copy one table's rows from the scratch database into the new schema, resealed; how many."""
    columns = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    read = sql.SQL("COPY (SELECT {} FROM {} ORDER BY {}) TO STDOUT").format(
        columns, sql.Identifier(source, table.name), sql.Identifier(_column(table.model._meta.pk)))  # fmt: skip
    write = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(target, table.name), columns)
    count = 0
    with (
        scratch.cursor() as source_cursor, source_cursor.copy(read) as rows,
        connection.cursor() as cursor, cursor.cursor.copy(write) as copy,
    ):  # fmt: skip
        for values in rows.rows():
            copy.write_row(resealer.row(table, list(values)))
            count += 1
    return count


def _reset_sequences(table: _Table, target: str) -> None:
    """The new schema's id sequences past the copied ids."""
    qualified = f"{connection.ops.quote_name(target)}.{connection.ops.quote_name(table.name)}"
    with connection.cursor() as cursor:
        for field in table.model._meta.concrete_fields:
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [qualified, _column(field)])
            sequence = cursor.fetchone()[0]
            if sequence is None:
                continue
            statement = sql.SQL("SELECT setval(%s, COALESCE(max({}), 0) + 1, false) FROM {}").format(
                sql.Identifier(_column(field)), sql.Identifier(target, table.name))  # fmt: skip
            cursor.execute(statement.as_string(cursor.cursor), [sequence])


def _old_chain_head(scratch: Any, source: str) -> str:
    query = sql.SQL("SELECT sequence, entry_hash FROM {} ORDER BY sequence DESC LIMIT 1")
    row = scratch.execute(query.format(sql.Identifier(source, "audit_auditevent"))).fetchone()
    return "empty" if row is None else f"{row[0]}:{row[1]}"


def _fill(scratch: Any, source: str, slug: str, expected: dict[str, int]) -> tuple[dict[str, int], int]:
    """Copy the carried tables into the new community (its schema current), checked against the manifest."""
    tables = _tables(scratch, source, slug)
    resealer = _Resealer(source, slug, _data_keys(scratch, source))
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # rows refer to each other; checked at commit
    rows = {}
    for table in tables:
        rows[table.name] = _copy(scratch, table, source, slug, resealer)
        _reset_sequences(table, slug)
        if rows[table.name] != expected.get(f"{source}.{table.name}", rows[table.name]):
            raise BackupError(f"{table.name}: {rows[table.name]} rows restored, the backup counted "
                              f"{expected[f'{source}.{table.name}']}")  # fmt: skip
    return rows, resealer.count


def _record(slug: str, reasons: tuple[str, ...], actor_id: str) -> None:
    """The restore, in the current schema's audit log (the new community's, then the platform's)."""
    audit_append(action="community.restore", resource_type="community", resource_id=slug, actor_id=actor_id,
                 reasons=reasons)  # fmt: skip


def restore_as_community(
    *, source: str, slug: str, name: str, domain: str, actor_id: str, folder: str | None = None,
    store: BackupStore | None = None, server: str | None = None,
) -> Restored:  # fmt: skip
    """Restore ``source``'s logical backup (the newest, or ``folder``) as the new community ``slug``.

    The scratch database is made on ``server`` (a URL; by default the backup
    connection's, :func:`operations.backups.postgres.server_url`), which must be
    the server of Django's own database, where the new community is created.

    Raises:
        BackupError: no such backup, the source's key is gone, the backup does not fit this release,
            or a value did not open.
        BadRequest, Conflict: ``slug``, ``name`` or ``domain`` is invalid or taken.
    """
    started = time.monotonic()
    community_create_check(slug=slug, name=name, domain=domain)  # refused before any work
    store = store or BackupStore()
    folder = backup_of(store, source, folder)
    manifest = store.manifest_at(folder)
    if manifest.get("slug") != source:
        raise BackupError(f"{folder}'s manifest names another community")
    schema = str(manifest.get("schema") or source)
    expected = {key: int(value) for key, value in dict(manifest.get("table_counts") or {}).items()}  # type: ignore[call-overload]
    server = server or postgres.server_url()
    with _scratch_database(server, f"{SCRATCH_PREFIX}{slug}") as scratch_url:
        restore_community(store, folder, structure_from=server, into=scratch_url)
        with postgres.connect(scratch_url) as scratch:
            reasons = (f"source:{source}", f"backup:{folder}", f"source-chain-head:{_old_chain_head(scratch, schema)}")
            try:
                with transaction.atomic():
                    community_create(slug=slug, name=name, domain=domain, actor_id=actor_id)
                    try:
                        with schema_context(slug):
                            rows, resealed = _fill(scratch, schema, slug, expected)
                            _record(slug, reasons, actor_id)
                    except BaseException:
                        # Before the rollback, not after: until then this transaction holds the slug, so a
                        # concurrent create_community of it cannot have made the key this destroys.
                        get_provider().destroy_community_key(slug)
                        raise
                    _record(slug, reasons, actor_id)  # the platform's log (community_create left the public schema)
            except (CiphertextIntegrityError, ValueError) as error:
                raise BackupError(f"a value of {source}'s backup did not open: {type(error).__name__}") from error
            except DatabaseError as error:
                raise BackupError(f"the restore into {slug} failed: {str(error).splitlines()[0]}") from error
            finally:
                use_public_schema()
    return Restored(slug, source, folder, rows, resealed, time.monotonic() - started)
