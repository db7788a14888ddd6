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
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections
from psycopg import conninfo

from operations.backups.errors import BackupError


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


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """Run one of the tools; a failure raises :class:`BackupError` with its last line of stderr."""
    result = subprocess.run(command, capture_output=True, check=False, **kwargs)  # noqa: S603 # nosec B603
    if result.returncode != 0:
        last = (result.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise BackupError(f"{Path(command[0]).name} failed: {last[0]}")
    return result


def as_server_user() -> list[str]:
    """The prefix that runs a server program as the ``postgres`` user when this process is root."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", str(settings.BACKUP_SERVER_USER), "--"]
