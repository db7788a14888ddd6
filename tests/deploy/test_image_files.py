"""Invariants of deploy/Dockerfile and .dockerignore, and the entry point's fail-closed roles."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
ENTRYPOINT = ROOT / "deploy" / "bin" / "entrypoint"


def final_stage() -> str:
    """The text of the Dockerfile's last stage (what the running image is made of)."""
    return re.split(r"^FROM ", DOCKERFILE, flags=re.MULTILINE)[-1]


def test_the_final_stage_runs_as_a_non_root_numeric_user() -> None:
    users = re.findall(r"^USER (\S+)", final_stage(), flags=re.MULTILINE)
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0


def test_requirements_are_installed_hash_checked() -> None:
    installs = [line for line in DOCKERFILE.splitlines() if "pip install" in line]
    assert installs
    assert all("--require-hashes" in line for line in installs)


def test_the_final_stage_has_no_build_tools_and_no_package_lists() -> None:
    stage = final_stage()
    for tool in ("build-essential", "gcc", "libpq-dev", "pip install"):
        assert tool not in stage
    for line in stage.splitlines():
        if "apt-get install" in line:
            assert "rm -rf /var/lib/apt/lists/*" in stage


def test_the_image_has_a_healthcheck_labels_and_the_release() -> None:
    stage = final_stage()
    assert re.search(r"^HEALTHCHECK .*probe", stage, flags=re.MULTILINE)
    assert 'org.opencontainers.image.version="${SERVICE_RELEASE}"' in stage
    assert "SERVICE_RELEASE=${SERVICE_RELEASE}" in stage


def test_the_build_context_leaves_out_git_venv_keys_and_env_files() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for entry in (".git", ".venv", ".env", "*.pem", "*.key", "htmlcov"):
        assert entry in ignored


def run_entrypoint(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run deploy/bin/entrypoint as a process with this interpreter's bin directory."""
    environment = {**os.environ, "BIN_DIR": str(Path(sys.executable).parent), **env}
    return subprocess.run(  # noqa: S603  # a fixed script of this repository
        [str(ENTRYPOINT), *args], capture_output=True, text=True, timeout=120, env=environment, check=False
    )


def test_probe_fails_when_nothing_is_live() -> None:
    result = run_entrypoint("probe", PROBE_URL="http://127.0.0.1:9/health/live")
    assert result.returncode != 0


def test_migrate_fails_closed_on_a_bad_database_url(tmp_path: Path) -> None:
    result = run_entrypoint(
        "migrate",
        DJANGO_SETTINGS_MODULE="config.settings.development",
        DATABASE_URL="postgres://nobody@127.0.0.1:1/missing",
        DATABASE_OWNER_URL="",
        LOCAL_STATE_DIR=str(tmp_path),
    )
    assert result.returncode != 0


def test_an_unknown_role_is_refused() -> None:
    assert run_entrypoint("shell").returncode == 64
