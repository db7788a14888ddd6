"""Blue/green deployment: start the idle colour, check it, move Kong's weights, verify, roll back.

Locally each colour is a set of real gunicorn processes on its own loopback port; Kong is reached at
``KONG_ADMIN_URL`` (DB-less: the whole declarative configuration is POSTed to ``/config``). State lives in
``LOCAL_STATE_DIR/bluegreen/state.json``: the live colour, each colour's port, pid and release, and the
configuration loaded before the last switch (for rollback). Every command holds an exclusive lock on
``bluegreen.lock`` for its whole run, and writes the state file atomically (temporary file, then rename), so a
crash leaves either the old or the new state, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess  # nosec B404 - starts gunicorn with a fixed argument list, no shell
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from django.conf import settings

from gateway.kong import UPSTREAM, kong_config

COLOURS = ("blue", "green")
DEFAULT_PORTS = {"blue": 8101, "green": 8102}
OK = HTTPStatus.OK


class DeploymentError(Exception):
    """A step failed; the message says which and what state was left."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, body and headers."""

    status: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        """The body as JSON (None when it is not)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def http(method: str, url: str, *, body: bytes | None = None, headers: Mapping[str, str] | None = None) -> Answer:
    """One request; connection failures are a status 0 answer, never an exception."""
    if not url.startswith(("http://", "https://")):
        raise DeploymentError(f"not an http(s) URL: {url}")
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  # nosec B310 - http(s) only
            return Answer(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read(), dict(error.headers))
    except (urllib.error.URLError, OSError):
        return Answer(0, b"", {})


def state_dir() -> Path:
    """Where the state file, the lock, pid files and logs live."""
    path = Path(settings.LOCAL_STATE_DIR) / "bluegreen"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """One operation at a time: a second one fails at once instead of waiting."""
    with (state_dir() / "bluegreen.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeploymentError("another blue/green operation is running (bluegreen.lock is held)") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_state() -> dict[str, Any]:
    """The state; a missing file is the initial one (nothing live, blue to deploy first)."""
    path = state_dir() / "state.json"
    if not path.exists():
        return {"live": None, "colours": {}, "previous_config": None, "config": None}
    return dict(json.loads(path.read_text(encoding="utf-8")))


def save_state(state: Mapping[str, Any]) -> None:
    """Write atomically."""
    path = state_dir() / "state.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)


def idle_colour(state: Mapping[str, Any]) -> str:
    """The colour that is not live (blue when nothing is)."""
    return "green" if state.get("live") == "blue" else "blue"


def alive(pid: int | None) -> bool:
    """Whether process ``pid`` runs."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def stop_colour(state: dict[str, Any], colour: str) -> None:
    """Stop a colour's gunicorn (its whole process group: graceful TERM, then KILL)."""
    entry = state["colours"].get(colour) or {}
    pid = int(entry.get("pid") or 0)
    if alive(pid):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.2)
        if alive(pid):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
    if entry:
        entry["pid"] = None
        entry["status"] = "stopped"


DEFAULT_DB_CONNECTION_BUDGET = 80  # config/gunicorn.py's default


def base_url(entry: Mapping[str, Any]) -> str:
    """The colour's address as a URL."""
    return f"http://127.0.0.1:{entry['port']}"


def colour_environment(release: str) -> dict[str, str]:
    """The new colour's environment: its release, and half the database connections while both colours run.

    Each colour's gunicorn bounds its greenlets by ``GUNICORN_DB_CONNECTION_BUDGET`` (config/gunicorn.py);
    two colours at the full default would together ask for twice what the database was sized for. An
    operator's own figure is taken as the colour's share.
    """
    env = {**os.environ, "SERVICE_RELEASE": release}
    env.setdefault("GUNICORN_DB_CONNECTION_BUDGET", str(DEFAULT_DB_CONNECTION_BUDGET // 2))
    return env


def deploy(*, release: str, port: int | None = None, gunicorn_args: tuple[str, ...] = ()) -> str:
    """Start the idle colour with ``release`` beside the live one; returns the colour."""
    with locked():
        state = load_state()
        colour = idle_colour(state)
        if state["colours"].get(colour):
            stop_colour(state, colour)  # a failed or half-started earlier attempt
        port = port or int(state["colours"].get(colour, {}).get("port") or DEFAULT_PORTS[colour])
        log = (state_dir() / f"{colour}.log").open("ab")
        command = [
            sys.executable, "-m", "gunicorn", "--config", "python:config.gunicorn",
            "--bind", f"127.0.0.1:{port}",
            # Each colour its own control socket: by default both masters would share ~/.gunicorn/gunicorn.ctl.
            "--control-socket", str(state_dir() / f"{colour}.ctl"),
            *gunicorn_args, "config.wsgi",
        ]  # fmt: skip
        process = subprocess.Popen(  # noqa: S603  # nosec B603 - fixed argument list
            command, env=colour_environment(release), stdout=log, stderr=log, start_new_session=True
        )
        state["colours"][colour] = {"port": port, "pid": process.pid, "release": release, "status": "starting"}
        save_state(state)
        return colour


def wait_ready(entry: Mapping[str, Any], *, timeout: float) -> Answer:
    """Poll ``/health/ready`` until 200 or ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    answer = Answer(0, b"", {})
    while time.monotonic() < deadline:
        answer = http("GET", base_url(entry) + "/health/ready")
        if answer.status == OK:
            return answer
        time.sleep(0.5)
    return answer


@dataclass(frozen=True)
class Smoke:
    """The smoke requests' parameters: a public host, a member's login at one community, another community."""

    public_host: str
    community_host: str
    other_community_host: str
    email: str
    password: str


def _get(entry: Mapping[str, Any], host: str, path: str, token: str | None = None) -> Answer:
    headers = {"Host": host, **({"Authorization": f"Bearer {token}"} if token else {})}
    return http("GET", base_url(entry) + path, headers=headers)


def smoke(entry: Mapping[str, Any], smoke: Smoke) -> list[str]:
    """A token-less public call, a member's call, and the same token refused at another community."""
    failures = []
    if (public := _get(entry, smoke.public_host, "/.well-known/jwks.json")).status != OK:
        failures.append(f"public JWKS answered {public.status}")
    login = http(
        "POST", base_url(entry) + "/api/v1/auth/token",
        body=json.dumps({"email": smoke.email, "password": smoke.password}).encode(),
        headers={"Host": smoke.community_host, "Content-Type": "application/json"},
    )  # fmt: skip
    token = (login.json() or {}).get("access") if login.status == OK else None
    if not token:
        return [*failures, f"member login at {smoke.community_host} answered {login.status}"]
    if (member := _get(entry, smoke.community_host, "/api/v1/me", token)).status != OK:
        failures.append(f"member call answered {member.status}")
    crossed = _get(entry, smoke.other_community_host, "/api/v1/me", token)
    if crossed.status not in {HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN}:
        failures.append(f"a {smoke.community_host} token at {smoke.other_community_host} answered {crossed.status}")
    return failures


def health_check(*, timeout: float, checks: Smoke) -> str:
    """The idle colour is ready (database, Redis, broker, policy, keys) and passes the smoke requests."""
    with locked():
        state = load_state()
        colour = idle_colour(state)
        entry = state["colours"].get(colour)
        if not entry or not alive(entry.get("pid")):
            raise DeploymentError(f"{colour} is not running: run `make deploy-blue` first")
        answer = wait_ready(entry, timeout=timeout)
        if answer.status != OK:
            entry["status"] = "unhealthy"
            save_state(state)
            down = (answer.json() or {}).get("detail", "no answer") if answer.status else "no answer"
            raise DeploymentError(f"{colour} is not ready after {timeout:.0f}s ({answer.status}: {down})")
        failures = smoke(entry, checks)
        entry["status"] = "unhealthy" if failures else "healthy"
        save_state(state)
        if failures:
            raise DeploymentError(f"{colour} failed its smoke requests: " + "; ".join(failures))
        return colour


def _targets(state: Mapping[str, Any], live: str) -> dict[str, tuple[str, int]]:
    return {
        colour: (f"127.0.0.1:{entry['port']}", 100 if colour == live else 0)
        for colour, entry in state["colours"].items()
        if entry
    }


def post_config(admin_url: str, config: Mapping[str, Any]) -> None:
    """Load ``config`` into Kong (DB-less ``POST /config``); 201, or 304 when already loaded."""
    answer = http(
        "POST", admin_url.rstrip("/") + "/config?check_hash=1",
        body=json.dumps(config).encode(), headers={"Content-Type": "application/json"},
    )  # fmt: skip
    if answer.status not in {201, 304}:
        message = (answer.json() or {}).get("message", "no answer") if answer.status else "no answer"
        raise DeploymentError(f"Kong refused the configuration ({answer.status}): {message}")


def switch(*, admin_url: str, rollback: bool = False, kong_options: Mapping[str, Any] | None = None) -> str:
    """Move all traffic to the idle, healthy colour; or, with ``rollback``, restore the previous configuration.

    ``kong_options`` go to :func:`gateway.kong.kong_config` (the token keys and the upstream CA of a deploy file).
    """
    with locked():
        state = load_state()
        return _rollback(state, admin_url) if rollback else _switch(state, admin_url, kong_options or {})


def _switch(state: dict[str, Any], admin_url: str, kong_options: Mapping[str, Any]) -> str:
    colour = idle_colour(state)
    entry = state["colours"].get(colour) or {}
    if entry.get("status") != "healthy":
        raise DeploymentError(f"{colour} has not passed `make health-check` (status {entry.get('status')})")
    config = kong_config(targets=_targets(state, colour), **kong_options)
    post_config(admin_url, config)
    state |= {"previous_config": state.get("config"), "config": config, "previous_live": state["live"], "live": colour}
    save_state(state)
    return colour


def _rollback(state: dict[str, Any], admin_url: str) -> str:
    previous, before = state.get("previous_config"), state.get("previous_live")
    if not previous or not before:
        raise DeploymentError("nothing to roll back to: no previous configuration in the state file")
    post_config(admin_url, previous)
    state |= {"config": previous, "previous_config": None, "live": before, "previous_live": None}
    save_state(state)
    return str(before)


_FIVE_XX = re.compile(r"^gateway_http_requests_total\{(?P<labels>[^}]*)\}\s+(?P<value>[0-9.eE+-]+)$", re.MULTILINE)


def error_rate(metrics: str) -> tuple[float, float]:
    """(5xx requests, all requests) from ``gateway_http_requests_total`` in Prometheus text."""
    errors = total = 0.0
    for match in _FIVE_XX.finditer(metrics):
        value = float(match["value"])
        total += value
        if re.search(r'status="5\d\d"', match["labels"]):
            errors += value
    return errors, total


def _live_failures(entry: Mapping[str, Any], *, metrics_token: str, max_error_rate: float) -> list[str]:
    answer = http("GET", base_url(entry) + "/health/ready")
    failures = [] if answer.status == OK else [f"readiness answered {answer.status}"]
    release = (answer.json() or {}).get("release")
    if release != entry.get("release"):
        failures.append(f"release is {release!r}, expected {entry.get('release')!r}")
    metrics = http("GET", base_url(entry) + "/metrics", headers={"Authorization": f"Bearer {metrics_token}"})
    if metrics.status != OK:
        failures.append(f"/metrics answered {metrics.status}")
    else:
        errors, total = error_rate(metrics.body.decode())
        if total and errors / total > max_error_rate:
            failures.append(f"error rate {errors / total:.1%} above {max_error_rate:.1%}")
    return failures


def verify(*, admin_url: str, metrics_token: str, max_error_rate: float = 0.01) -> tuple[list[str], bool]:
    """Check the live colour; on failure roll back and stop it. Returns what failed (empty: all good), rolled back."""
    with locked():
        state = load_state()
        live = state.get("live")
        entry = state["colours"].get(live) if live else None
        if not entry:
            raise DeploymentError("no live colour in the state file")
        failures = _live_failures(entry, metrics_token=metrics_token, max_error_rate=max_error_rate)
        if not failures or not state.get("previous_config"):
            return failures, False
        _rollback(state, admin_url)
        stop_colour(state, str(live))
        entry["status"] = "rolled back"
        save_state(state)
        return failures, True


def kong_targets(admin_url: str) -> list[dict[str, Any]]:
    """The targets Kong has loaded for the service's upstream."""
    answer = http("GET", admin_url.rstrip("/") + f"/upstreams/{UPSTREAM}/targets")
    return list((answer.json() or {}).get("data", [])) if answer.status == OK else []
