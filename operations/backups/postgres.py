"""PostgreSQL's own tools, found and run without a shell, and the server they back up.

``BACKUP_DATABASE_URL`` names the server (a role with ``REPLICATION``; the
database in it is where the slot and restore points are made);
``BACKUP_PG_BINDIR`` the tools' directory (``pg_config --bindir`` when unset).
Passwords stay in the URL handed to the tools' environment, never on a
command line or in a log.
"""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404  # PostgreSQL's own tools, argument lists only
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections
from psycopg import conninfo, sql

from operations.backups.errors import BackupError
from operations.backups.store import chunks_of

_CATALOGS = ("pg_catalog", "information_schema", "pg_toast")


def bindir() -> Path:
    """The directory of ``pg_basebackup``, ``pg_receivewal``, ``pg_ctl`` and ``postgres``."""
    configured = str(settings.BACKUP_PG_BINDIR)
    if configured:
        return Path(configured)
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        raise BackupError("no pg_config on PATH: set BACKUP_PG_BINDIR to PostgreSQL's bin directory")
    found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)  # noqa: S603 # nosec B603
    return Path(found.stdout.strip())


def tool(name: str) -> str:
    """The full path of one of PostgreSQL's programs."""
    path = bindir() / name
    if not path.is_file():
        raise BackupError(f"{name} is not in {path.parent}")
    return str(path)


def server_url() -> str:
    """The URL of the server and database being backed up: ``BACKUP_DATABASE_URL``, else Django's own database."""
    if settings.BACKUP_DATABASE_URL:
        return str(settings.BACKUP_DATABASE_URL)
    database = connections["default"].settings_dict
    return conninfo.make_conninfo(
        host=database["HOST"] or "127.0.0.1", port=str(database["PORT"] or 5432), user=database["USER"],
        password=database["PASSWORD"] or None, dbname=database["NAME"],
    )  # fmt: skip


def connect(url: str | None = None) -> psycopg.Connection[Any]:
    """An autocommit connection to the server (or to ``url``)."""
    try:
        return psycopg.connect(url or server_url(), autocommit=True, connect_timeout=10)
    except psycopg.Error as error:
        raise BackupError(f"cannot connect to the database server ({type(error).__name__})") from error


def _failure(command: list[str], errors: bytes) -> BackupError:
    """The error of a tool that failed: its name and the last line it wrote to its error output."""
    last = [line for line in errors.decode(errors="replace").splitlines() if line.strip()][-1:] or ["(no output)"]
    return BackupError(f"{Path(command[0]).name} failed: {last[0]}")


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """Run one of the tools; a failure raises :class:`BackupError` with its last line of stderr."""
    result = subprocess.run(command, capture_output=True, check=False, **kwargs)  # noqa: S603 # nosec B603
    if result.returncode != 0:
        raise _failure(command, result.stderr or b"")
    return result


@contextmanager
def output_of(command: list[str]) -> Iterator[Iterator[bytes]]:
    """Run a tool whose standard output the block reads, chunk by chunk; a failure raises :class:`BackupError`.

    Its error output goes to a temporary file, so a tool with much to say
    never blocks on a pipe nobody reads until its output ends.
    """
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)  # noqa: S603 # nosec B603
        if process.stdout is None:  # a pipe
            raise BackupError(f"{Path(command[0]).name} did not start")
        try:
            yield chunks_of(process.stdout)
        finally:
            process.stdout.close()
            returncode = process.wait()
        if returncode != 0:
            errors.seek(0)
            raise _failure(command, errors.read())


def feed(command: list[str], chunks: Iterable[bytes]) -> None:
    """Run a tool with all of ``chunks`` as its standard input; a failure raises :class:`BackupError`.

    A tool that stops reading early fails the run too, whatever its exit
    status: the last chunks (and the store's checksum at the end) were not read.
    """
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=errors)  # noqa: S603 # nosec B603
        if process.stdin is None:  # a pipe
            raise BackupError(f"{Path(command[0]).name} did not start")
        cut = False
        try:
            for chunk in chunks:
                process.stdin.write(chunk)
        except BrokenPipeError:
            cut = True  # it stopped reading: its exit status and error output say why
        finally:
            try:
                process.stdin.close()
            except BrokenPipeError:
                cut = True
            returncode = process.wait()
        if returncode != 0:
            errors.seek(0)
            raise _failure(command, errors.read())
        if cut:
            raise BackupError(f"{Path(command[0]).name} stopped reading before the end of its input")


def count_rows(connection: Any, schema: str, table: str) -> int:
    """``count(*)`` of one table."""
    query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    return int(connection.execute(query).fetchone()[0])


def table_counts(connection: Any, schema: str | None = None) -> dict[str, int]:
    """``schema.table`` -> rows, for every ordinary table of ``schema`` (or of every schema outside the catalogs)."""
    tables = connection.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
        "AND (table_schema = %s OR (%s::text IS NULL AND table_schema <> ALL(%s))) ORDER BY 1, 2",
        [schema, schema, list(_CATALOGS)],
    ).fetchall()
    return {f"{name}.{table}": count_rows(connection, name, table) for name, table in tables}


def as_server_user() -> list[str]:
    """The prefix that runs a server program as the ``postgres`` user when this process is root."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", str(settings.BACKUP_SERVER_USER), "--"]
