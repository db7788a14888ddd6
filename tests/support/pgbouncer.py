"""A real PgBouncer (Debian's ``pgbouncer``) in transaction mode in front of the test database.

``make test`` installs the package (scripts/dev-services.sh); the tests that
need it start one here, on a free port, with a pool small enough that every
client shares a few server connections: each transaction of a client may run
on a server connection another client's last transaction used, which is what
production's pooler does under load.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.support.served import free_port

BINARY = "pgbouncer"
RUN_AS = "postgres"  # PgBouncer refuses to run as root
STARTUP_SECONDS = 10.0


@dataclass(frozen=True)
class Bouncer:
    """A running PgBouncer: its port, and its log for a failing test to show."""

    port: int
    log: Path

    def log_text(self) -> str:
        """What PgBouncer has logged so far."""
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


def _binary() -> str:
    found = shutil.which(BINARY) or shutil.which(BINARY, path="/usr/sbin")
    assert found, (
        "pgbouncer is not installed: `make test` installs it (scripts/dev-services.sh), or apt-get install pgbouncer"
    )
    return found


def _config(directory: Path, *, database: str, users: tuple[str, ...], port: int, pool_size: int) -> Path:
    (directory / "users.txt").write_text("".join(f'"{user}" ""\n' for user in users), encoding="utf-8")
    config = directory / "pgbouncer.ini"
    config.write_text(
        "\n".join(
            (
                "[databases]",
                f"{database} = host=127.0.0.1 port=5432 dbname={database}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {directory / 'users.txt'}",
                "pool_mode = transaction",
                f"default_pool_size = {pool_size}",
                "max_client_conn = 500",
                # Nothing resets a server connection between clients: what a transaction leaves, the next one sees.
                "server_reset_query =",
                f"logfile = {directory / 'pgbouncer.log'}",
                f"pidfile = {directory / 'pgbouncer.pid'}",
                "",
            )
        ),
        encoding="utf-8",
    )
    return config


def _wait_until_up(port: int, database: str, user: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "pgbouncer exited:\n" + log.read_text(encoding="utf-8", errors="replace")
        try:
            with psycopg.connect(host="127.0.0.1", port=port, dbname=database, user=user, connect_timeout=2):
                return
        except psycopg.OperationalError:
            time.sleep(0.1)
    raise AssertionError("pgbouncer did not accept a connection in time")


@contextmanager
def pgbouncer(database: str, *, users: tuple[str, ...], pool_size: int) -> Iterator[Bouncer]:
    """PgBouncer in transaction mode for ``database``, ``pool_size`` server connections per user; stopped on exit."""
    directory = Path(tempfile.mkdtemp(prefix="cgw-pgbouncer-"))
    if os.geteuid() == 0:  # root runs it as postgres: the files must be that user's
        account = pwd.getpwnam(RUN_AS)
        os.chown(directory, account.pw_uid, account.pw_gid)
    port = free_port()
    config = _config(directory, database=database, users=users, port=port, pool_size=pool_size)
    command = [_binary(), *(["-u", RUN_AS] if os.geteuid() == 0 else []), str(config)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # noqa: S603 - fixed
    bouncer = Bouncer(port=port, log=directory / "pgbouncer.log")
    try:
        _wait_until_up(port, database, users[0], process, bouncer.log)
        yield bouncer
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)
