"""``make bench`` (load part): the secured participant page against the bare view, under gunicorn and wrk.

One gunicorn, started with the committed configuration (``config/gunicorn.py``),
serves :mod:`bench.load_app`: the secured page ``GET /api/v1/participants/?limit=100``
by a principal investigator's bearer token through the whole middleware stack,
and the bare view (same query, same decrypted fields, no token, policy, audit or
middleware) at ``/bare/api/v1/participants/?limit=100``, both set up as
:mod:`bench.research` sets them up (scratch community, 100 participants with
every PHI field). wrk drives each with 32 connections, the two alternately for
several rounds; the medians of requests/s, p50 and p99 and the errors (socket
errors and every answer of status 400 or above, a 429 included) are reported,
and the secured/bare ratio against the 80% target.

The rate limiter still runs on the secured path: the workers get limits the
load cannot reach (by the settings' environment variables), so any 429 is an
error of the run, not a measurement. No Celery worker runs: the audit events the
secured requests stage are chained by this process between rounds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess  # nosec B404 - starts gunicorn and wrk, fixed argument lists
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection

from bench import research  # django.setup() with the test settings
from bench.machine import stolen
from core.redis import get_redis
from security.audit.sequencer import queued_flag

CONNECTIONS = 32
THREADS = int(os.environ.get("BENCH_LOAD_THREADS", "2"))
SECONDS = int(os.environ.get("BENCH_LOAD_SECONDS", "8"))  # per path per round
ROUNDS = int(os.environ.get("BENCH_LOAD_ROUNDS", "5"))
TARGET = 0.80
LUA = Path(__file__).with_name("load.lua")
BARE_URL = "/bare" + research.SECURED_URL
LIMITS_OUT_OF_REACH = {name: str(value) for name, value in research.LIMITS_OUT_OF_REACH.items()}


@dataclass
class Target:
    """One path under load: its URL, its headers, and what each round measured."""

    label: str
    url: str
    authorization: str = ""
    rounds: list[dict[str, float]] = field(default_factory=list)

    def median(self, key: str) -> float:
        """The median of ``key`` over the rounds."""
        return statistics.median(measured[key] for measured in self.rounds)

    def errors(self) -> int:
        """Every error of every round."""
        return int(sum(measured["errors"] for measured in self.rounds))


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ensure_wrk() -> str:
    """The path of wrk, installed with apt-get (Debian package ``wrk``) when missing."""
    found = shutil.which("wrk")
    if found is None:
        print("installing wrk")
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment)  # noqa: S607 # nosec B603 B607
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=environment)  # noqa: S607 # nosec B603 B607
        found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed and apt-get did not install it")
    return found


def start_gunicorn(port: int) -> subprocess.Popen[bytes]:
    """Start gunicorn on ``port`` with the committed configuration, serving :mod:`bench.load_app`."""
    environment = {
        **os.environ,
        **LIMITS_OUT_OF_REACH,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "BENCH_LOAD_DATABASE_NAME": str(connection.settings_dict["NAME"]),
        "BENCH_LOAD_JWT_KEYS_DIR": str(settings.JWT_SIGNING_KEYS_DIR),
        "TEST_LOCAL_KEY_FILE": str(settings.LOCAL_KEY_FILE),
        "AUDIT_CHAIN_SIGNAL_MS": os.environ.get("AUDIT_CHAIN_SIGNAL_MS", "50"),
    }
    command = [
        sys.executable, "-m", "gunicorn", "--config", "python:config.gunicorn",
        "--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null", "bench.load_app:application",
    ]  # fmt: skip
    return subprocess.Popen(command, env=environment, start_new_session=True)  # noqa: S603 # nosec B603


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop gunicorn and its workers (its own process group), gracefully first."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def get(port: int, url: str, authorization: str = "") -> tuple[int, bytes]:
    """One request to gunicorn: status and body."""
    headers = {"Host": research.HOST}
    if authorization:
        headers["Authorization"] = authorization
    request = urllib.request.Request(f"http://127.0.0.1:{port}{url}", headers=headers)  # nosec B310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 # nosec B310 - loopback
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as refused:
        return int(refused.code), bytes(refused.read())


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    """Wait until gunicorn answers the bare page."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}")
        try:
            if get(port, BARE_URL)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("gunicorn did not answer in 60 s")


def check_pages(port: int, secured: Target, bare: Target) -> None:
    """Both paths serve the same 100 participants, in clear; the secured one refuses a request without a token."""
    secured_status, secured_body = get(port, secured.url, secured.authorization)
    bare_status, bare_body = get(port, bare.url)
    if secured_status != 200 or bare_status != 200:
        raise SystemExit(f"secured answered {secured_status}, bare {bare_status}: {secured_body[:300]!r}")
    page, plain = json.loads(secured_body)["results"], json.loads(bare_body)["results"]
    if len(page) != research.PARTICIPANTS or [row["id"] for row in page] != [row["id"] for row in plain]:
        raise SystemExit("the secured and the bare path do not serve the same participants")
    if page[0]["given_name"] != "Ada000":
        raise SystemExit("the secured page is redacted")
    if get(port, secured.url)[0] != 401:
        raise SystemExit("the secured page answered a request without a token")


def load(wrk: str, port: int, target: Target, seconds: int) -> dict[str, float]:
    """One wrk run against ``target``: its JSON summary."""
    environment = {**os.environ, "BENCH_LOAD_HOST": research.HOST, "BENCH_LOAD_AUTHORIZATION": target.authorization}
    command = [
        wrk, "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--timeout", "10s",
        "-s", str(LUA), f"http://127.0.0.1:{port}{target.url}",
    ]  # fmt: skip
    output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True).stdout  # noqa: S603 # nosec B603
    line = next(line for line in output.splitlines() if line.startswith("BENCH_LOAD_JSON "))
    return dict(json.loads(line.removeprefix("BENCH_LOAD_JSON ")))


def measure(wrk: str, port: int, secured: Target, bare: Target) -> None:
    """A warm-up of each, then the rounds: the two paths in turn, order reversed every round."""
    for target in (bare, secured):
        load(wrk, port, target, 2)
    research.chain_staged()
    for number in range(ROUNDS):
        for target in (bare, secured) if number % 2 == 0 else (secured, bare):
            target.rounds.append(load(wrk, port, target, SECONDS))
            research.chain_staged()


def report(secured: Target, bare: Target, steal: object) -> float:
    """The medians per path and the ratio; returns the ratio."""
    print(
        f"participant list, {research.PARTICIPANTS} rows x {research.PHI_FIELD_COUNT} PHI fields, gunicorn "
        f"(config/gunicorn.py as committed), wrk {CONNECTIONS} connections {THREADS} threads, "
        f"{ROUNDS} rounds of {SECONDS} s per path, medians; {steal}"
    )
    for target in (bare, secured):
        print(
            f"{target.label:<52} {target.median('requests_per_second'):7.1f} req/s  "
            f"p50 {target.median('p50_ms'):7.2f} ms  p99 {target.median('p99_ms'):7.2f} ms  "
            f"errors {target.errors()}"
        )
    ratios = [
        _ratio(mine["requests_per_second"], theirs["requests_per_second"])
        for mine, theirs in zip(secured.rounds, bare.rounds, strict=True)
    ]
    ratio = _ratio(secured.median("requests_per_second"), bare.median("requests_per_second"))
    verdict = "meets" if ratio >= TARGET and secured.errors() == 0 and bare.errors() == 0 else "misses"
    print(
        f"{'secured / bare requests/s':<52} {ratio:7.1%}  (rounds {min(ratios):.0%}-{max(ratios):.0%}; "
        f"{verdict} the {TARGET:.0%} target with no errors)"
    )
    return ratio


def _ratio(secured: float, bare: float) -> float:
    """``secured / bare``; nought when the bare path served nothing (the run measured nothing)."""
    return secured / bare if bare > 0 else 0.0


def main() -> None:
    """Seed the scratch community, serve it with gunicorn, load both paths, report, tidy up."""
    wrk = ensure_wrk()
    research.prepare_test_database()
    research.drop_community()
    server = None
    try:
        token = research.seed()
        get_redis().set(queued_flag(research.SLUG), "1", ex=3600)  # no worker: see bench.research.run
        port = free_port()
        server = start_gunicorn(port)
        secured = Target("secured: token, policy, consent, decryption, audit", research.SECURED_URL, f"Bearer {token}")
        bare = Target("bare DRF view (no token, policy, audit, middleware)", BARE_URL)
        wait_ready(port, server)
        check_pages(port, secured, bare)
        with stolen() as steal:
            measure(wrk, port, secured, bare)
        report(secured, bare, steal)
    finally:
        if server is not None:
            stop(server)
        get_redis().delete(queued_flag(research.SLUG))
        research.drop_community()


if __name__ == "__main__":
    main()
