"""A real gunicorn, started with the command line ``scripts/serve.sh`` uses, serving the test database.

The command is read out of ``serve.sh`` itself (the ``"$BIN/gunicorn" ...``
line), so what the tests see in the access log is what ``make run`` writes.
The server runs the test settings (:mod:`tests.support.served_settings`) in a
process of its own: the rows it must see are committed for real, and the
caller removes them afterwards (:func:`tests.support.commits.empty_community_tables`).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from tenants.models import Community
from tests.factories import ConsentFactory, MembershipFactory, UserFactory
from tests.support.commits import empty_community_tables
from tests.support.tokens import token_for

ROOT = Path(__file__).resolve().parents[2]
SERVE_SCRIPT = ROOT / "scripts" / "serve.sh"
STARTUP_SECONDS = 30.0


def gunicorn_command(script: Path = SERVE_SCRIPT) -> str:
    """The gunicorn command of ``script``, continuation lines joined (still naming ``$BIN``, ``$HOST``, ``$PORT``)."""
    joined = script.read_text(encoding="utf-8").replace("\\\n", " ")
    found = re.search(r'^"\$BIN/gunicorn".*$', joined, flags=re.MULTILINE)
    assert found is not None, f"{script} starts no gunicorn"
    return found.group(0)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def suite_database_url() -> str:
    """The tests' database (pytest-django's ``test_`` one), as the service's role, as ``make run`` serves."""
    parts = urlsplit(settings.DATABASE_URL)
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(
        netloc=f"{settings.DATABASE_SERVICE_ROLE}@{host}", path="/" + str(connection.settings_dict["NAME"])
    ).geturl()


@dataclass(frozen=True)
class Served:
    """A running server: where it listens, the file its standard output and error go to, and its process."""

    base_url: str
    log: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop gunicorn (its arbiter and workers: the process group this helper started) and wait for it."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)

    def stopped_log(self) -> str:
        """The whole log, read once the server has stopped: a worker writes its access line after the response."""
        self.stop()
        return self.log.read_text(encoding="utf-8", errors="replace")

    def request(
        self, method: str, path: str, *, host: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> tuple[int, bytes]:
        """Send one request with ``Host: host``; the status and the body (an error status is an answer too)."""
        outgoing = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            self.base_url + path, data=body, method=method, headers={"Host": host, **headers}
        )
        try:
            with urllib.request.urlopen(outgoing, timeout=30) as response:  # noqa: S310 - http://127.0.0.1 only
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())


def _wait_until_up(served: Served, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("gunicorn exited:\n" + served.log.read_text(encoding="utf-8", errors="replace"))
        try:
            served.request("GET", "/health/live", host="localhost", headers={})
        except OSError:
            time.sleep(0.2)
            continue
        return
    raise AssertionError("gunicorn did not answer in time:\n" + served.log.read_text(encoding="utf-8"))


@contextmanager
def gunicorn_serving(log: Path, environ: Mapping[str, str] | None = None) -> Iterator[Served]:
    """Run serve.sh's gunicorn command on a free port with the test settings; stopped (and its log flushed) on exit.

    ``environ`` overrides the server's environment (a ``DATABASE_URL`` through a pooler, say).
    """
    port = free_port()
    environment = {
        **os.environ,
        "BIN": str(Path(sys.executable).parent),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DJANGO_SETTINGS_MODULE": "tests.support.served_settings",
        "DATABASE_URL": suite_database_url(),
        "DATABASE_OWNER_URL": "",
        "TEST_JWT_SIGNING_KEYS_DIR": str(settings.JWT_SIGNING_KEYS_DIR),
        "PYTHONPATH": str(ROOT),
        **(environ or {}),
    }
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - serve.sh's own command, fixed
            ["bash", "-c", "exec " + gunicorn_command()],  # noqa: S607 - bash from PATH, as serve.sh runs
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Served(base_url=f"http://127.0.0.1:{port}", log=log, process=process)
    try:
        _wait_until_up(served, process)
        yield served
    finally:
        served.stop()


@dataclass(frozen=True)
class Committed:
    """What a served test committed: a principal investigator of alpha (and a token) and a consented participant."""

    token: str
    participant_id: str
    mrn: str


@contextmanager
def committed_investigator_and_participant(mrn: str) -> Iterator[Committed]:
    """A PI of alpha with a token, and a participant with ``mrn`` consented to research use, committed for real.

    Call it with the database unblocked; alpha's research tables and the user are removed on exit.
    """
    alpha = Community.objects.get(slug="alpha")
    user = UserFactory.create()
    try:
        MembershipFactory.create(user=user, community=alpha, role="principal_investigator")
        token = token_for(user, alpha)
        with schema_context("alpha"):
            consent = ConsentFactory.create(participant__mrn=mrn)
        yield Committed(token=token, participant_id=str(consent.participant_id), mrn=mrn)
    finally:
        empty_community_tables("alpha")
        user.delete()


@contextmanager
def serving_a_searchable_participant(log: Path, mrn: str) -> Iterator[tuple[Served, Committed]]:
    """gunicorn as serve.sh starts it (logging to ``log``), and a committed PI who may search for ``mrn``."""
    with committed_investigator_and_participant(mrn) as committed, gunicorn_serving(log) as served:
        yield served, committed
