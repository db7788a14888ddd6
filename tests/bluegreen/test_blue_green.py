"""Blue/green end to end: real gunicorn colours, the Kong admin double, traffic through the Kong double.

The tests run in order on one set of processes: blue goes live, green is deployed beside it and takes the
traffic, a rollback brings it back, a colour that is not ready is refused, and a live colour that fails
verification is rolled back and stopped.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request

from tests.bluegreen.conftest import PORTS, Deployment


def _token(port: int, host: str = "alpha.localhost") -> str:
    password = os.path.join(os.environ.get("LOCAL_STATE_DIR", "/tmp/cg_state"), "e2e", "demo-password")  # noqa: S108
    body = json.dumps({"email": "owner@alpha.example", "password": open(password).read().strip()}).encode()  # noqa: SIM115
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/auth/token",
        data=body,
        headers={"Host": host, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # nosec B310 - loopback
        token: str = json.load(response)["access"]
    return token


def _through_kong(deployment: Deployment, token: str, times: int = 4) -> tuple[list[int], list[int]]:
    """``times`` member calls through Kong: (statuses, ports of the colour that answered each)."""
    kong, ports = deployment.kong()
    statuses = [
        kong.request("GET", "/api/v1/me", host="alpha.localhost", headers=[("Authorization", f"Bearer {token}")]).status
        for _ in range(times)
    ]
    return statuses, ports


def _gone(group: int, timeout: float = 60.0) -> None:
    """Wait until every process of the group ``group`` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"process group {group} still runs {timeout:.0f} s after SIGTERM")


def _go_live(deployment: Deployment, release: str, colour: str) -> None:
    deployed = deployment.step("deploy", "--release", release, "--port", str(PORTS[colour]))
    assert deployed.returncode == 0, deployed.stderr
    assert colour in deployed.stdout
    checked = deployment.step("health-check", "--timeout", "90")
    assert checked.returncode == 0, checked.stderr + checked.stdout
    switched = deployment.step("switch")
    assert switched.returncode == 0, switched.stderr
    assert f"traffic is on {colour}" in switched.stdout


def test_blue_goes_live_and_serves_through_kong(deployment: Deployment) -> None:
    _go_live(deployment, "r1", "blue")

    statuses, ports = _through_kong(deployment, _token(PORTS["blue"]))

    assert statuses == [200] * 4
    assert set(ports) == {PORTS["blue"]}
    assert deployment.state()["live"] == "blue"


def test_green_deployed_beside_blue_then_takes_all_traffic(deployment: Deployment) -> None:
    token = _token(PORTS["blue"])
    deployed = deployment.step("deploy", "--release", "r2", "--port", str(PORTS["green"]))
    assert deployed.returncode == 0, deployed.stderr
    # While green starts, Kong still sends everything to blue, which keeps serving.
    statuses, ports = _through_kong(deployment, token)
    assert statuses == [200] * 4
    assert set(ports) == {PORTS["blue"]}

    assert deployment.step("health-check", "--timeout", "90").returncode == 0
    assert deployment.step("switch").returncode == 0

    statuses, ports = _through_kong(deployment, token, times=6)
    assert statuses == [200] * 6
    assert set(ports) == {PORTS["green"]}  # weight 0 gets nothing
    weights = {target["target"]: target["weight"] for target in deployment.admin.targets("compliance-gateway-colours")}
    assert weights == {f"127.0.0.1:{PORTS['blue']}": 0, f"127.0.0.1:{PORTS['green']}": 100}


def test_rollback_puts_traffic_back_on_blue(deployment: Deployment) -> None:
    rolled = deployment.step("switch", "--rollback")

    assert rolled.returncode == 0, rolled.stderr
    assert "traffic is on blue" in rolled.stdout
    statuses, ports = _through_kong(deployment, _token(PORTS["blue"]))
    assert statuses == [200] * 4
    assert set(ports) == {PORTS["blue"]}
    assert deployment.admin.config == deployment.admin.posts[0]


def test_a_colour_that_is_not_ready_is_refused_and_blue_keeps_the_traffic(deployment: Deployment) -> None:
    # Green again, with a broker that does not answer: its readiness reports the broker down.
    broken = {"RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:1/nowhere"}
    assert deployment.step("deploy", "--release", "r3", "--port", str(PORTS["green"]), env=broken).returncode == 0

    checked = deployment.step("health-check", "--timeout", "30")
    switched = deployment.step("switch")

    assert checked.returncode != 0
    assert "not ready" in checked.stderr
    assert "rabbitmq" in checked.stderr
    assert switched.returncode != 0
    assert "has not passed" in switched.stderr
    statuses, ports = _through_kong(deployment, _token(PORTS["blue"]))
    assert statuses == [200] * 4
    assert set(ports) == {PORTS["blue"]}


def test_verify_rolls_back_a_live_colour_that_fails(deployment: Deployment) -> None:
    _go_live(deployment, "r4", "green")
    green_pid = deployment.state()["colours"]["green"]["pid"]
    os.killpg(green_pid, 15)  # the new release dies after the switch
    _gone(green_pid)  # gunicorn shuts down gracefully: verify must meet it dead, not still finishing a request

    verified = deployment.step("verify")

    assert verified.returncode != 0
    assert "rolled back" in verified.stderr
    assert deployment.state()["live"] == "blue"
    assert deployment.state()["colours"]["green"]["status"] == "rolled back"
    statuses, ports = _through_kong(deployment, _token(PORTS["blue"]))
    assert statuses == [200] * 4
    assert set(ports) == {PORTS["blue"]}


def test_verify_passes_a_live_colour_with_its_release_and_no_errors(deployment: Deployment) -> None:
    verified = deployment.step("verify")

    assert verified.returncode == 0, verified.stderr
