"""A real Redis Cluster of three primaries, from the machine's own ``redis-server``, on free ports.

Each node runs with ``cluster-enabled yes`` and nothing persisted; ``redis-cli
--cluster create`` assigns the 16,384 slots among them, and the cluster is
ready once every node reports ``cluster_state:ok``. A short node timeout lets
a test stop a node and see the cluster fail within seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import redis

from tests.support.served import free_port

NODES = 3
STARTUP_SECONDS = 20.0
NODE_TIMEOUT_MS = 1000


@dataclass
class Cluster:
    """A running cluster: its nodes' ports and processes."""

    ports: list[int]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The URL of one node (the client finds the others)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def node(self, index: int) -> redis.Redis:
        """A plain client of one node (for CLUSTER INFO, and to see where a key lives)."""
        return redis.Redis(host="127.0.0.1", port=self.ports[index], decode_responses=True, socket_timeout=2)

    def state(self, index: int = 0) -> str:
        """``cluster_state`` as node ``index`` sees it."""
        return str(self.node(index).cluster("INFO").get("cluster_state"))

    def stop(self, index: int) -> None:
        """Stop node ``index`` (its slots are then served by nobody)."""
        self.processes[index].terminate()
        self.processes[index].wait(timeout=10)

    def flush(self) -> None:
        """Empty every node."""
        for index in range(len(self.ports)):
            self.node(index).flushall()


def _binary(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is not installed: `make test` installs Redis (scripts/dev-services.sh)"
    return found


def _start_node(directory: Path, port: int) -> subprocess.Popen[bytes]:
    arguments = [
        _binary("redis-server"),
        # The bus port is given: the default (the port + 10,000) may be taken, or past 65,535.
        "--port", str(port), "--cluster-port", str(free_port()), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no",
        "--cluster-enabled", "yes", "--cluster-config-file", str(directory / f"nodes-{port}.conf"),
        "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--dir", str(directory),
        "--logfile", str(directory / f"redis-{port}.log"),
    ]  # fmt: skip
    return subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def _wait(condition: str, check: Callable[[], object], deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the Redis Cluster did not come up: {condition}")


def _is_ok(cluster: Cluster, index: int) -> bool:
    return cluster.state(index) == "ok"


@contextmanager
def redis_cluster() -> Iterator[Cluster]:
    """Three primaries holding every slot, stopped (and their files removed) on exit."""
    with tempfile.TemporaryDirectory(prefix="cgw-redis-cluster-") as name:
        directory = Path(name)
        cluster = Cluster(ports=[free_port() for _ in range(NODES)])
        try:
            cluster.processes = [_start_node(directory, port) for port in cluster.ports]
            deadline = time.monotonic() + STARTUP_SECONDS
            for index in range(NODES):
                _wait(f"node {cluster.ports[index]} answers", cluster.node(index).ping, deadline)
            subprocess.run(  # noqa: S603
                [_binary("redis-cli"), "--cluster", "create", *(f"127.0.0.1:{port}" for port in cluster.ports),
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, capture_output=True, timeout=STARTUP_SECONDS,
            )  # fmt: skip
            for index in range(NODES):
                _wait(f"node {cluster.ports[index]} reports ok", partial(_is_ok, cluster, index), deadline)
            yield cluster
        finally:
            for process in cluster.processes:
                if process.poll() is None:
                    process.terminate()
                    process.wait(timeout=10)
