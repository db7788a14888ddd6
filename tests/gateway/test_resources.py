"""The readiness report's resource figures: memory, disk and database connections.

The cgroup figures are read from a fake cgroup tree (``gateway.resources.CGROUP_ROOT`` and
``PROC_SELF_CGROUP`` pointed at ``tmp_path``); the resident set, the disk and the connection counts are the
real ones of this process, this filesystem and the test server.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from config import gunicorn as gunicorn_settings
from gateway import resources
from tests.support.clients import ALPHA_HOST, BETA_HOST

GIB = 1024**3
V1_NO_LIMIT = "9223372036854771712"  # what cgroup v1 shows when no limit is set (4 KiB pages)


def write_cgroup(root: Path, files: dict[str, str]) -> None:
    """Write the fake cgroup files (paths relative to ``root``), making their directories."""
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content + "\n")


@pytest.fixture
def fake_cgroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, dict[str, str]], None]:
    """Point the cgroup reader at a tree under ``tmp_path``: ``/proc/self/cgroup``'s text, then the files."""
    root = tmp_path / "cgroup"
    root.mkdir()
    proc_self_cgroup = tmp_path / "proc-self-cgroup"
    monkeypatch.setattr(resources, "CGROUP_ROOT", root)
    monkeypatch.setattr(resources, "PROC_SELF_CGROUP", proc_self_cgroup)

    def arrange(own_cgroup: str, files: dict[str, str]) -> None:
        proc_self_cgroup.write_text(own_cgroup)
        write_cgroup(root, files)

    return arrange


def ready_resources(client_for: Callable[[str], APIClient], host: str = "localhost") -> dict[str, Any]:
    response = client_for(host).get("/health/ready")
    assert response.status_code == 200
    resources_part: dict[str, Any] = response.json()["resources"]
    return resources_part


def vm_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.parametrize(
    ("own_cgroup", "files", "limit", "usage", "ratio"),
    [
        pytest.param(
            "0::/\n",
            {"cgroup.controllers": "cpu memory", "memory.max": str(GIB), "memory.current": str(GIB // 4)},
            GIB,
            GIB // 4,
            0.25,
            id="v2-with-limit",
        ),
        pytest.param(
            "0::/\n",
            {"cgroup.controllers": "cpu memory", "memory.max": "max", "memory.current": str(GIB // 4)},
            None,
            GIB // 4,
            None,
            id="v2-max",
        ),
        pytest.param(
            "0::/gateway.slice/web.service\n",
            {
                "cgroup.controllers": "cpu memory",
                "gateway.slice/memory.max": str(GIB),
                "gateway.slice/memory.current": str(GIB // 2),
                "gateway.slice/web.service/memory.max": "max",
                "gateway.slice/web.service/memory.current": str(GIB // 8),
            },
            GIB,
            GIB // 8,
            0.125,
            id="v2-limit-on-the-parent-slice",
        ),
        pytest.param(
            "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n",
            {"memory/memory.limit_in_bytes": str(2 * GIB), "memory/memory.usage_in_bytes": str(GIB // 2)},
            2 * GIB,
            GIB // 2,
            0.25,
            id="v1-with-limit",
        ),
        pytest.param(
            "4:memory:/\n",
            {"memory/memory.limit_in_bytes": V1_NO_LIMIT, "memory/memory.usage_in_bytes": str(GIB // 2)},
            None,
            GIB // 2,
            None,
            id="v1-unlimited",
        ),
        pytest.param("", {}, None, None, None, id="no-cgroup"),
    ],
)
def test_ready_reports_the_memory_cgroup_limit_and_usage(
    own_cgroup: str,
    files: dict[str, str],
    limit: int | None,
    usage: int | None,
    ratio: float | None,
    fake_cgroup: Callable[[str, dict[str, str]], None],
    db: None,
    client_for: Callable[[str], APIClient],
) -> None:
    fake_cgroup(own_cgroup, files)

    memory = ready_resources(client_for)["memory"]

    assert memory["cgroup_limit_bytes"] == limit
    assert memory["cgroup_usage_bytes"] == usage
    assert memory["used_ratio"] == ratio
    assert memory["status"] == "ok"
    assert memory["process_rss_bytes"] > 0


def test_ready_reports_this_process_resident_set_as_proc_self_status_does(
    db: None, client_for: Callable[[str], APIClient]
) -> None:
    rss = ready_resources(client_for)["memory"]["process_rss_bytes"]

    assert abs(rss - vm_rss_bytes()) < 32 * 1024 * 1024


def test_ready_reports_the_gunicorn_worker_limit_gunicorn_enforces(
    db: None, client_for: Callable[[str], APIClient], settings: Any
) -> None:
    assert settings.GUNICORN_WORKER_MAX_RSS_MB == gunicorn_settings.WORKER_MAX_RSS_MB  # the same variable, read alike

    assert ready_resources(client_for)["memory"]["worker_max_rss_bytes"] == 512 * 1024 * 1024
    settings.GUNICORN_WORKER_MAX_RSS_MB = 0  # off
    assert ready_resources(client_for)["memory"]["worker_max_rss_bytes"] is None


def test_ready_reports_the_disk_holding_the_state_directory(
    tmp_path: Path, db: None, client_for: Callable[[str], APIClient], settings: Any
) -> None:
    settings.LOCAL_STATE_DIR = tmp_path

    disk = ready_resources(client_for)["disk"]

    expected = shutil.disk_usage(tmp_path)
    assert disk["total_bytes"] == expected.total
    assert abs(disk["free_bytes"] - expected.free) < 64 * 1024 * 1024  # other writers share the filesystem
    assert disk["used_ratio"] == pytest.approx(expected.used / (expected.used + expected.free), abs=0.01)
    assert disk["status"] == "ok"


def test_a_state_directory_not_made_yet_is_measured_on_the_filesystem_it_will_be_made_on(
    tmp_path: Path, db: None, client_for: Callable[[str], APIClient], settings: Any
) -> None:
    settings.LOCAL_STATE_DIR = tmp_path / "not" / "made"

    disk = ready_resources(client_for)["disk"]

    assert disk["total_bytes"] == shutil.disk_usage(tmp_path).total


def test_ready_counts_database_connections_against_the_slots_the_server_allows(
    db: None, client_for: Callable[[str], APIClient]
) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_connections")
        max_connections = int(cursor.fetchone()[0])
        cursor.execute("SHOW superuser_reserved_connections")
        reserved = int(cursor.fetchone()[0])
        cursor.execute("SELECT coalesce(current_setting('reserved_connections', true)::int, 0)")
        reserved += int(cursor.fetchone()[0])  # PostgreSQL 16 and later reserve slots for a role too

    connections = ready_resources(client_for)["database_connections"]

    assert connections["max_connections"] == max_connections - reserved
    assert 1 <= connections["in_use"] <= max_connections
    assert connections["used_ratio"] == round(connections["in_use"] / connections["max_connections"], 4)
    assert connections["status"] == "ok"


def test_a_resource_past_the_warn_ratio_warns_and_readiness_stays_200(
    fake_cgroup: Callable[[str, dict[str, str]], None], db: None, client_for: Callable[[str], APIClient]
) -> None:
    fake_cgroup("0::/\n", {"cgroup.controllers": "memory", "memory.max": "1000", "memory.current": "950"})

    assert ready_resources(client_for)["memory"]["status"] == "warn"  # 0.95 against the default 0.9
    with override_settings(READINESS_RESOURCE_WARN_RATIO=0.96):
        assert ready_resources(client_for)["memory"]["status"] == "ok"
    with override_settings(READINESS_RESOURCE_WARN_RATIO=0.0):
        every = ready_resources(client_for)  # asserts 200
        assert {every["disk"]["status"], every["database_connections"]["status"]} == {"warn"}


def test_the_503_answer_carries_the_resources_too(db: None, client_for: Callable[[str], APIClient]) -> None:
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0", HEALTH_CHECK_TIMEOUT_SECONDS=0.5):
        response = client_for("localhost").get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "dependencies_unavailable"
    assert set(body["resources"]) == {"memory", "disk", "database_connections"}
    assert body["resources"]["memory"]["process_rss_bytes"] > 0
    assert body["resources"]["database_connections"]["in_use"] >= 1


def broken_check() -> None:
    raise ConnectionError("database down")


def test_with_the_database_down_its_connections_are_null_and_the_rest_still_reported(
    db: None, client_for: Callable[[str], APIClient], settings: Any
) -> None:
    settings.READINESS_CHECKS = {**settings.READINESS_CHECKS, "postgresql": f"{__name__}.broken_check"}

    response = client_for("localhost").get("/health/ready")

    assert response.status_code == 503
    resources_part = response.json()["resources"]
    assert resources_part["database_connections"] is None
    assert resources_part["memory"]["process_rss_bytes"] > 0
    assert resources_part["disk"]["total_bytes"] > 0


def test_an_unreadable_proc_and_state_directory_are_null_not_an_error(
    tmp_path: Path, db: None, client_for: Callable[[str], APIClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources, "PROC_SELF_STATUS", tmp_path / "no-proc" / "status")
    monkeypatch.setattr(resources, "PROC_SELF_CGROUP", tmp_path / "no-proc" / "cgroup")
    monkeypatch.setattr(resources, "CGROUP_ROOT", tmp_path / "no-cgroup")
    monkeypatch.setattr(shutil, "disk_usage", _unreadable)

    resources_part = ready_resources(client_for)

    assert resources_part["memory"]["process_rss_bytes"] is None
    assert resources_part["memory"]["cgroup_limit_bytes"] is None
    assert resources_part["disk"] is None


def _unreadable(path: object) -> None:
    raise PermissionError(13, "Permission denied")


@pytest.mark.parametrize("host", ["localhost", ALPHA_HOST, BETA_HOST])
def test_the_report_names_no_community_and_no_path(
    host: str, tmp_path: Path, db: None, client_for: Callable[[str], APIClient], settings: Any
) -> None:
    settings.LOCAL_STATE_DIR = tmp_path / "state"

    text = json.dumps(ready_resources(client_for, host))

    assert "/" not in text
    for name in ("alpha", "beta", "Alpha", "Beta", "postgres"):
        assert name not in text


def test_a_figure_failing_unforeseen_is_null_and_readiness_still_answers(
    db: None, client_for: Callable[[str], APIClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources, "process_rss_bytes", _unforeseen)

    resources_part = ready_resources(client_for)

    assert resources_part["memory"] is None
    assert resources_part["disk"]["total_bytes"] > 0


def _unforeseen() -> int:
    raise RuntimeError("a bug in a reader")
