"""Restoring a base backup and its WAL into a scratch cluster of its own, to a target, and serving it.

The scratch cluster lives in a temporary directory (owned by the server's
user when this process is root), listens on 127.0.0.1 on a free port, and
is stopped and removed on exit. The WAL it replays is opened from the store
into the directory's ``archive`` first; ``restore_command`` copies from there.
"""

from __future__ import annotations

import shutil
import socket
import subprocess  # nosec B404  # PostgreSQL's own tools and tar, argument lists only
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from psycopg import conninfo

from operations.backups import postgres
from operations.backups.errors import BackupError
from operations.backups.store import BackupStore

RECOVERY_WAIT_SECONDS = 300


@dataclass(frozen=True)
class Target:
    """Where recovery stops: a named restore point, a time (ISO 8601 with a zone), or nowhere (the WAL's end)."""

    name: str | None = None
    time: str | None = None

    def settings(self) -> list[str]:
        """The recovery settings of this target (``postgresql.conf`` lines)."""
        lines = ["recovery_target_action = 'promote'"]
        if self.name is not None:
            lines.append(f"recovery_target_name = '{_literal(self.name)}'")
        if self.time is not None:
            lines += [f"recovery_target_time = '{_literal(self.time)}'", "recovery_target_inclusive = false"]
        return lines


@dataclass(frozen=True)
class Restored:
    """A running restored cluster: the URL of the backed-up database in it, and how long the restore took."""

    url: str
    seconds: float


def _literal(value: str) -> str:
    if "'" in value or "\\" in value:
        raise ValueError("a recovery target may not hold quotes or backslashes")
    return value


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _unpack(store: BackupStore, name: str, into: Path) -> None:
    """Open a sealed tar from the store straight into ``tar -x`` (the plain tar is never written whole)."""
    postgres.feed([shutil.which("tar") or "tar", "-x", "-C", str(into)], store.read(name))


def _stage_wal(store: BackupStore, archive: Path, start: str) -> None:
    """Open the WAL from the base backup's first segment on (and every timeline history) into ``archive``.

    The segments are plain there, in the scratch directory that is removed
    with the cluster; older ones (up to 30 days of them) are left in the store.
    """
    archive.mkdir(mode=0o700)
    for name in store.names("wal"):
        segment = name.removeprefix("wal/")
        if not segment.endswith(".history") and segment < start:
            continue
        with (archive / segment).open("wb") as handle:
            for chunk in store.read(name):
                handle.write(chunk)


def _configure(data: Path, archive: Path, port: int, target: Target) -> None:
    (data / "postgresql.conf").write_text(
        "\n".join([
            "listen_addresses = '127.0.0.1'", f"port = {port}", f"unix_socket_directories = '{data}'",
            "max_connections = 40", "shared_buffers = 32MB", "wal_level = replica", "archive_mode = off",
            "hot_standby = off",  # no connections before the target: the primary's limits need not be matched
            f"restore_command = 'cp \"{archive}/%f\" \"%p\"'",
            *target.settings(),
        ]) + "\n"
    )  # fmt: skip
    (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    (data / "pg_ident.conf").write_text("")
    (data / "postgresql.auto.conf").write_text("")
    (data / "recovery.signal").write_text("")
    for leftover in ("postmaster.pid", "postmaster.opts", "standby.signal"):
        (data / leftover).unlink(missing_ok=True)


def _wait_promoted(url: str, log: Path) -> None:
    deadline = time.monotonic() + RECOVERY_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            with postgres.connect(url) as connection:
                if not connection.execute("SELECT pg_is_in_recovery()").fetchone()[0]:  # type: ignore[index]
                    return
        except BackupError:
            pass
        time.sleep(0.5)
    raise BackupError(f"the restored cluster did not finish recovery: {_log_tail(log)}")


def _stop(data: Path) -> None:
    """Stop the scratch cluster at once (it is thrown away)."""
    command = [*postgres.as_server_user(), postgres.tool("pg_ctl"), "--pgdata", str(data), "--mode", "immediate"]
    subprocess.run([*command, "--wait", "stop"], capture_output=True, check=False)  # noqa: S603 # nosec B603


def _log_tail(log: Path) -> str:
    """The scratch server's last log lines that say why (FATAL, PANIC, ERROR), or its last line."""
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    telling = [line for line in lines if any(word in line for word in ("FATAL", "PANIC", "ERROR"))]
    return " / ".join((telling or lines)[-2:]) or "(no server log)"


@contextmanager
def restored(backup_id: str, target: Target, store: BackupStore | None = None) -> Iterator[Restored]:
    """Restore ``backup_id`` with all archived WAL to ``target`` in a scratch cluster; stop and remove it after."""
    store = store or BackupStore()
    manifest = store.manifest(backup_id)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="cgw-restore-", dir=settings.BACKUP_SCRATCH_DIR or None))
    data, archive, log = root / "data", root / "archive", root / "server.log"
    data.mkdir(mode=0o700)
    port = _free_port()
    running = False
    try:
        _unpack(store, str(manifest["base"]), data)
        _stage_wal(store, archive, str(manifest.get("start_wal", "")))
        _configure(data, archive, port, target)
        if postgres.as_server_user():
            shutil.chown(root, str(settings.BACKUP_SERVER_USER))
            subprocess.run(["chown", "-R", str(settings.BACKUP_SERVER_USER), str(root)], check=True)  # noqa: S603 S607 # nosec B603 B607
        running = True
        try:
            postgres.run([
                *postgres.as_server_user(), postgres.tool("pg_ctl"), "--pgdata", str(data), "--log", str(log),
                "--wait", "--timeout", str(RECOVERY_WAIT_SECONDS), "start",
            ])  # fmt: skip
        except BackupError as error:
            raise BackupError(f"{error}: {_log_tail(log)}") from error
        source = conninfo.conninfo_to_dict(postgres.server_url())
        url = conninfo.make_conninfo(
            host="127.0.0.1", port=str(port), user=source.get("user"), dbname=source.get("dbname")
        )
        _wait_promoted(url, log)
        yield Restored(url, time.monotonic() - started)
    finally:
        if running:
            _stop(data)
        shutil.rmtree(root, ignore_errors=True)
