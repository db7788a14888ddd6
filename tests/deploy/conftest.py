"""The image's entry point run as real processes: a database, a RabbitMQ vhost and a state directory of their own.

``deploy/bin/entrypoint`` is started as the image starts it: ``BIN_DIR`` names this virtualenv's ``bin``,
``APP_DIR`` the checkout, and the environment is the one ``deploy/compose.yml`` gives the app services (its
variable names and values), built from nothing rather than from this test process's environment. Two
differences, each forced by what this machine has: the key provider is the local one and the policy engine the
embedded one (no Vault, no OPA here), and the services are this machine's PostgreSQL, Redis and RabbitMQ.

The database is ``DATABASE_URL``'s name with ``_entrypoint`` (and the xdist worker), created afresh for the
module and migrated by ``entrypoint migrate`` itself; ``seed_demo`` then creates the demo communities alpha and
beta. The vhost is ``RABBITMQ_URL``'s with the same suffix, made with ``rabbitmqctl``. Every process is started
in a process group of its own and the whole group is stopped at the end, the database and the vhost dropped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

from tests.support.broker import drop_vhost, fresh_vhost
from tests.support.databases import drop_database, fresh_database
from tests.support.served import free_port

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "bin" / "entrypoint"
BIN_DIR = Path(sys.executable).parent
SUFFIX = "_entrypoint"
STOP_SECONDS = 15.0


def wait_for(condition: Callable[[], bool], *, seconds: float, what: str, log: Path | None = None) -> None:
    """Poll ``condition`` until it holds; fail, quoting the end of ``log``, after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            pytest.fail(f"{what}: not within {seconds:.0f} s\n{tail}")
        time.sleep(0.2)


@dataclass
class Process:
    """A running entry point: its process (the leader of a process group of its own) and its log file."""

    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """The entry point's pid: ``exec`` made it the role's own process (gunicorn's master, celery)."""
        return self.popen.pid

    def output(self) -> str:
        """What the process wrote so far (standard output and error)."""
        return self.log.read_text(errors="replace")

    def terminate(self, *, seconds: float = STOP_SECONDS) -> int:
        """SIGTERM to the process alone (what ``docker stop`` sends); its exit status within ``seconds``."""
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout=seconds)

    def stop_group(self) -> None:
        """End the whole group, the role's children too: SIGTERM, and SIGKILL to whatever is left after a while."""
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=STOP_SECONDS)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=STOP_SECONDS)


@dataclass
class Stack:
    """The environment the entry point's roles run in, and every process started in it."""

    env: dict[str, str]
    state_dir: Path
    logs: Path
    first_migrate: subprocess.CompletedProcess[str]
    processes: list[Process] = field(default_factory=list)

    @property
    def rabbitmq_url(self) -> str:
        """The module's vhost."""
        return self.env["RABBITMQ_URL"]

    def run(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``entrypoint <args>`` to its end."""
        return subprocess.run(  # noqa: S603  # nosec B603 - the repository's own entry point
            [str(ENTRYPOINT), *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``manage.py <args>`` with the venv's interpreter in the same environment (set-up and checks only)."""
        return subprocess.run(  # noqa: S603  # nosec B603 - the repository's own manage.py
            [str(BIN_DIR / "python"), "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def start(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> Process:
        """Start ``entrypoint <args>`` in a process group of its own, its output in ``<name>.log``."""
        log = self.logs / f"{name}.log"
        with log.open("wb") as sink:
            popen = subprocess.Popen(  # noqa: S603  # nosec B603 - the repository's own entry point
                [str(ENTRYPOINT), *args],
                cwd=ROOT,
                env={**self.env, **(env or {})},
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(popen=popen, log=log)
        self.processes.append(process)
        return process

    def start_api(self, name: str, **env: str) -> tuple[Process, int]:
        """``entrypoint api`` (one gevent worker) on a free port, once ``/health/live`` answers; and the port."""
        port = free_port()
        process = self.start(
            name,
            "api",
            env={
                "GUNICORN_BIND": f"127.0.0.1:{port}",
                "GUNICORN_WORKERS": "1",
                # One multiprocess directory per arbiter (config/gunicorn.py empties it when it starts).
                "PROMETHEUS_MULTIPROC_DIR": str(self.state_dir / f"prometheus-{name}"),
                **env,
            },
        )
        wait_for(lambda: _answers(port, process), seconds=60, what=f"{name} serving /health/live", log=process.log)
        return process, port


def _answers(port: int, process: Process) -> bool:
    if process.popen.poll() is not None:
        pytest.fail(f"entrypoint api exited {process.popen.returncode}\n{process.output()[-3000:]}")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
            connection.sendall(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return connection.recv(12).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def image_environment(*, home: Path, state_dir: Path, database_url: str, rabbitmq_url: str) -> dict[str, str]:
    """The app services' environment in deploy/compose.yml (``x-app``), with this machine's services."""
    return {
        # What the image itself sets (deploy/Dockerfile ENV), and where the entry point finds the code.
        "PATH": f"{BIN_DIR}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        # A HOME of the module's own: gunicorn 25.1+ would keep a control socket in $HOME/.gunicorn, which
        # config/gunicorn.py turns off (the api test checks that nothing appears there).
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "BIN_DIR": str(BIN_DIR),
        "APP_DIR": str(ROOT),
        # deploy/compose.yml's x-app environment.
        "DJANGO_SETTINGS_MODULE": "config.settings.development",
        "SERVICE_RELEASE": "entrypoint-test",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": "localhost,.localhost,api",
        "PUBLIC_HOSTS": "localhost",
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "CACHE_URL": settings.CACHE_URL,
        "RABBITMQ_URL": rabbitmq_url,
        "LOCAL_STATE_DIR": str(state_dir),
        "JWT_SIGNING_KEYS_DIR": str(state_dir / "jwt-keys"),
        "JWT_ISSUER": "http://localhost:8000",
        "JWT_AUDIENCE": "compliance-gateway",
        "KEY_PROVIDER": "local",
        "POLICY_ENGINE": "embedded",
        "METRICS_TOKEN": secrets.token_urlsafe(32),
        "PROXY_SHARED_SECRET": secrets.token_urlsafe(48),
        "REQUIRE_GATEWAY": "false",
        "PROMETHEUS_MULTIPROC_DIR": str(state_dir / "prometheus"),
        # The compose worker's autoscale (4,1), halved for this 2-core machine.
        "CELERY_AUTOSCALE_MAX": "2",
        "CELERY_AUTOSCALE_MIN": "1",
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A fresh database migrated by ``entrypoint migrate``, the demo communities, a vhost; all removed at the end."""
    base = tmp_path_factory.mktemp("entrypoint")
    state_dir, logs, home = base / "state", base / "logs", base / "home"
    for directory in (state_dir, logs, home):
        directory.mkdir()
    rabbitmq_url = fresh_vhost(SUFFIX)
    database_url = fresh_database(SUFFIX)
    env = image_environment(home=home, state_dir=state_dir, database_url=database_url, rabbitmq_url=rabbitmq_url)
    stack = Stack(env=env, state_dir=state_dir, logs=logs, first_migrate=subprocess.CompletedProcess([], 0))
    try:
        stack.first_migrate = stack.run("migrate")
        assert stack.first_migrate.returncode == 0, stack.first_migrate.stdout + stack.first_migrate.stderr
        for command in (("rotate_signing_key", "--if-missing"), ("seed_demo",)):
            result = stack.manage(*command)
            assert result.returncode == 0, result.stdout + result.stderr
        yield stack
    finally:
        for process in stack.processes:
            process.stop_group()
        drop_database(database_url)
        drop_vhost(rabbitmq_url)


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[int]:
    """``entrypoint api`` serving for the module; its port."""
    process, port = stack.start_api("api")
    yield port
    process.stop_group()
