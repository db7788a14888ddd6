"""Real gunicorn colours against real PostgreSQL, Redis and RabbitMQ, Kong's admin API double, the Kong double.

The colours cannot use the test database (each test's transaction is invisible to another process): they serve
a database of their own (``DATABASE_URL``'s name with ``_bluegreen`` and the xdist worker, created afresh for the
module, so a developer's database and an earlier run's demo passwords play no part), migrated, with the demo
communities alpha and beta that ``seed_demo`` creates, under development settings with Kong's proxy trust on
(``TRUSTED_PROXIES`` loopback, ``PROXY_SHARED_SECRET``). Every ``bluegreen`` step runs as ``manage.py bluegreen``
in a subprocess, as the Makefile runs it. The processes are started once per module and stopped at its end.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.doubles.kong import KongAnswer, KongDouble, Upstream
from tests.doubles.kong_admin import KongAdminDouble
from tests.gateway.conftest import certificate_authority, kong_conf
from tests.support.databases import fresh_database

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_SECRET = "g" * 48
PORTS = {"blue": 18111, "green": 18112}


@dataclass
class Deployment:
    """The environment the steps run in, the admin double, and the CA Kong trusts for the service."""

    env: dict[str, str]
    admin: KongAdminDouble
    service_ca: str
    state_dir: Path

    def step(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``manage.py bluegreen <args>``."""
        return subprocess.run(  # noqa: S603 - fixed command
            [sys.executable, "manage.py", "bluegreen", *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def state(self) -> dict[str, Any]:
        """The state file."""
        loaded: dict[str, Any] = json.loads((self.state_dir / "bluegreen" / "state.json").read_text())
        return loaded

    def kong(self) -> tuple[KongDouble, list[int]]:
        """A Kong double over the configuration the admin double holds now, and the ports it forwarded to."""
        assert self.admin.config is not None
        ports: list[int] = []

        def forward(upstream: Upstream) -> KongAnswer:
            host, _, port = upstream.address.rpartition(":")
            ports.append(int(port))
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            connection.putrequest(upstream.method, upstream.target, skip_host=True, skip_accept_encoding=True)
            for name, value in upstream.headers:
                connection.putheader(name, value)
            connection.endheaders(upstream.body or None)
            response = connection.getresponse()
            body = response.read()
            connection.close()
            return KongAnswer(response.status, list(response.getheaders()), body, upstream=upstream)

        double = KongDouble(
            self.admin.config,
            env={"KONG_GATEWAY_PROXY_SECRET": GATEWAY_SECRET},
            service_ca=self.service_ca,
            clock=time.time,
            address="127.0.0.1",
            sandbox_requires=kong_conf()["untrusted_lua_sandbox_requires"].split(","),
            forward=forward,
        )
        return double, ports


def _stop_all(state_dir: Path) -> None:
    path = state_dir / "bluegreen" / "state.json"
    if not path.exists():
        return
    for entry in json.loads(path.read_text())["colours"].values():
        pid = (entry or {}).get("pid")
        if pid:
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                continue


METRICS_TOKEN = "m" * 32  # the colours serve /metrics behind it; verify reads the error rate with it


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Seeded demo communities, the admin double, and the environment; every colour stopped at the end."""
    state_dir = Path(os.environ.get("LOCAL_STATE_DIR", "/tmp/cg_state")) / "e2e"  # noqa: S108 - local
    state_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(state_dir / "bluegreen", ignore_errors=True)
    ca = certificate_authority(name="blue/green test CA")
    ca_file = tmp_path_factory.mktemp("ca") / "service-ca.pem"
    ca_file.write_text(ca)
    admin = KongAdminDouble().start()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.development",
        "LOCAL_STATE_DIR": str(state_dir),
        "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/8"),
        "CACHE_URL": os.environ.get("TEST_CACHE_URL", "redis://127.0.0.1:6379/9"),
        "KONG_ADMIN_URL": admin.url,
        "KONG_UPSTREAM_CA_FILE": str(ca_file),
        "KONG_COMMUNITY_DOMAIN_SUFFIX": "localhost",
        "TRUSTED_PROXIES": "127.0.0.1/32",
        "PROXY_SHARED_SECRET": GATEWAY_SECRET,
        "METRICS_TOKEN": METRICS_TOKEN,
        "DATABASE_URL": fresh_database("_bluegreen"),
    }
    env.pop("DATABASE_OWNER_URL", None)
    for command in (["migrate", "--verbosity", "0"], ["rotate_signing_key", "--if-missing"], ["seed_demo"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)  # noqa: S603
    deployment = Deployment(env=env, admin=admin, service_ca=ca, state_dir=state_dir)
    try:
        yield deployment
    finally:
        _stop_all(state_dir)
        admin.stop()
