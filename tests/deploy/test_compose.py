"""Invariants of deploy/compose.yml, checked by a Compose implementation's ``config`` and by reading it.

No container runtime runs here, so nothing in the file is started: these tests prove it parses and
interpolates as Compose reads it, that each service is limited and health-checked, that no secret is
written in it, and that the app services run the image's own entry point roles.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yml"
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ONE_SHOTS = {name for name, service in SERVICES.items() if service.get("restart") == "no"}
APP_ROLES = {"api": "api", "worker": "worker", "beat": "beat", "migrate": "migrate"}
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASS|AUTH|(^|_)KEY($|_ID|S$)")
REFERENCE = re.compile(r"\$\{[A-Z0-9_]+(:?[?-][^}]*)?\}")
REQUIRED = re.compile(r"\$\{([A-Z0-9_]+):\?")


def compose_command() -> list[str]:
    """The Compose implementation scripts/compose-config.sh would use, or skip saying why there is none."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:  # noqa: S603
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("no docker compose / docker-compose, and apt-get cannot install it here (not root)")
    return []


def run_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    """``config -q`` on deploy/compose.yml with the given env file."""
    command = compose_command()
    if not command:
        result = subprocess.run(  # noqa: S603  # the repository's own script (installs docker-compose)
            [str(ROOT / "scripts" / "compose-config.sh")], capture_output=True, text=True, check=False, timeout=600
        )
        if result.returncode != 0:
            pytest.skip(f"apt-get could not install docker-compose: {result.stderr[-300:]}")
        command = compose_command()
    return subprocess.run(  # noqa: S603  # a fixed file of this repository
        [*command, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def literal_secrets(services: dict[str, dict[str, Any]]) -> list[str]:
    """Each ``service.NAME`` whose name says secret and whose value is not wholly a ``${...}`` reference.

    A URL's password must be a reference too (``postgres://user:${POSTGRES_PASSWORD:?...}@host``).
    """
    found = []
    for service_name, service in services.items():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.partition("=")[::2] for item in environment)
        for name, value in environment.items():
            text = "" if value is None else str(value)
            if SECRET_NAME.search(name) and text and not REFERENCE.fullmatch(text):
                found.append(f"{service_name}.{name}")
            userinfo = re.match(r"^[a-z]+://[^/@]*:([^@/]*)@", text)
            if userinfo and not REFERENCE.fullmatch(userinfo.group(1)):
                found.append(f"{service_name}.{name}")
    return found


def test_compose_config_accepts_the_file_with_placeholder_values() -> None:
    result = run_config(DEPLOY / "compose" / "validate.env")
    assert result.returncode == 0, result.stderr


def test_compose_refuses_the_file_while_a_secret_is_unset(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = run_config(empty)
    assert result.returncode != 0
    assert "set it in deploy/.env" in result.stderr


def test_the_stack_has_every_component_of_the_issue() -> None:
    expected = {"postgres", "redis", "rabbitmq", "vault", "vault-bootstrap", "opa-bundle", "opa"}
    expected |= {"kong-config", "kong", "migrate", "api", "worker", "beat"}
    assert expected <= set(SERVICES)


def test_every_long_running_service_has_a_health_check_and_one_shots_never_restart() -> None:
    for name, service in SERVICES.items():
        if name in ONE_SHOTS:
            continue
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), name
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
    assert {"vault-bootstrap", "opa-bundle", "kong-config", "migrate", "init-volumes"} <= ONE_SHOTS


def test_what_waits_for_a_one_shot_waits_for_it_to_succeed() -> None:
    for name, service in SERVICES.items():
        for needed, condition in (service.get("depends_on") or {}).items():
            wanted = "service_completed_successfully" if needed in ONE_SHOTS else "service_healthy"
            assert condition["condition"] == wanted, f"{name} -> {needed}"


def test_every_service_has_cpu_and_memory_limits() -> None:
    for name, service in SERVICES.items():
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert {"cpus", "memory"} <= set(limits), name


def test_every_image_is_pinned_to_an_exact_version() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        if "build" in service or image.startswith("${GATEWAY_IMAGE"):
            continue  # the project's own image, tagged with the release
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        assert "latest" not in tag
        # PostgreSQL's releases are MAJOR.MINOR (15.10); every other project here uses three parts.
        version = r"\d+\.\d+" if repository == "postgres" else r"\d+\.\d+\.\d+"
        assert re.match(rf"^{version}(-[a-z0-9.-]+)?$", tag), f"{name}: {image} is not an exact version"


def test_the_pinned_versions_are_those_the_issue_names() -> None:
    images = {name: service["image"] for name, service in SERVICES.items()}
    assert images["postgres"].startswith("postgres:15.")
    assert images["redis"].startswith("redis:7.")
    assert images["rabbitmq"].startswith("rabbitmq:3.13.")
    assert images["rabbitmq"].endswith("-management")
    assert images["opa"].startswith("openpolicyagent/opa:1.9.0")
    assert images["kong"] == "kong:3.9.1"


def test_no_secret_is_written_in_the_file() -> None:
    assert literal_secrets(SERVICES) == []


def test_the_secret_check_catches_a_literal_password_a_token_and_a_url_password() -> None:
    services: dict[str, dict[str, Any]] = {
        "a": {"environment": {"POSTGRES_PASSWORD": "hunter2", "KEY_PROVIDER": "vault"}},
        "b": {"environment": ["OPA_TOKEN=abc", "DJANGO_SECRET_KEY=${DJANGO_SECRET_KEY:?x}"]},
        "c": {"environment": {"DATABASE_URL": "postgres://gateway:hunter2@postgres/db"}},
    }
    assert literal_secrets(services) == ["a.POSTGRES_PASSWORD", "b.OPA_TOKEN", "c.DATABASE_URL"]


def test_every_required_variable_is_named_in_the_example_without_a_value() -> None:
    text = "\n".join(line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#"))
    required = set(REQUIRED.findall(text))
    lines = [line for line in (DEPLOY / "compose.env.example").read_text().splitlines() if line and line[0] != "#"]
    example = dict(line.partition("=")[::2] for line in lines)
    assert required == set(example)
    assert all(value == "" for value in example.values())


def test_the_filled_env_file_is_never_committed() -> None:
    result = subprocess.run(  # noqa: S603
        ["git", "-C", str(ROOT), "check-ignore", "-q", "deploy/.env"],  # noqa: S607
        check=False,
    )
    assert result.returncode == 0


def test_the_app_services_run_the_image_entrypoint_roles() -> None:
    entrypoint = (DEPLOY / "bin" / "entrypoint").read_text()
    roles = set(re.findall(r"^  ([a-z]+)\)$", entrypoint, flags=re.MULTILINE))
    for name, role in APP_ROLES.items():
        service = SERVICES[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["command"] == [role]
        assert role in roles
        assert service["entrypoint"][2].endswith('exec /app/deploy/bin/entrypoint "$$@"')
    assert SERVICES["api"]["healthcheck"]["test"] == ["CMD", "/app/deploy/bin/entrypoint", "probe"]


def test_the_app_services_run_read_only_as_the_image_user_with_a_tmpfs() -> None:
    for name in (*APP_ROLES, "opa-bundle", "kong-config"):
        service = SERVICES[name]
        assert service["read_only"] is True, name
        assert service["user"] == "10001:10001", name
        tmpfs = "/tmp:"  # noqa: S108  # the name of a tmpfs mount, compared, never a file made
        assert any(mount.startswith(tmpfs) for mount in service["tmpfs"]), name


def test_rabbitmq_declares_quorum_queues_by_default() -> None:
    mounts = SERVICES["rabbitmq"]["volumes"]
    assert "./compose/rabbitmq.conf:/etc/rabbitmq/conf.d/20-gateway.conf:ro" in mounts
    assert re.search(r"^default_queue_type = quorum$", (DEPLOY / "compose" / "rabbitmq.conf").read_text(), re.M)


def test_opa_reads_the_bundle_where_the_one_shot_writes_it() -> None:
    config = yaml.safe_load((DEPLOY / "opa" / "config.yaml").read_text())
    resource = config["bundles"]["authz"]["resource"]
    assert resource == "file:///etc/opa/bundle.tar.gz"
    assert SERVICES["opa-bundle"]["command"][1] == "/bundle/bundle.tar.gz"
    assert "opa-bundle:/bundle" in SERVICES["opa-bundle"]["volumes"]
    assert "opa-bundle:/etc/opa:ro" in SERVICES["opa"]["volumes"]
    assert "--authentication=token" in SERVICES["opa"]["command"]


def test_every_bind_mounted_file_exists() -> None:
    for name, service in SERVICES.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name}: {source}"


def run_app_wrapper(credentials: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The api service's ``bash -c`` entry point as a process here, its two paths pointed at this checkout."""
    script = SERVICES["api"]["entrypoint"][2].replace("$$", "$")
    script = script.replace("/run/vault-approle/gateway.env", str(credentials))
    script = script.replace("/app/deploy/bin/entrypoint", str(DEPLOY / "bin" / "entrypoint"))
    return subprocess.run(  # noqa: S603  # the compose file's own command, with local paths
        ["/bin/bash", "-c", script, "entrypoint", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "LOCAL_STATE_DIR": str(credentials.parent / "state")},
    )


def test_the_app_wrapper_refuses_to_start_without_the_approle_credentials(tmp_path: Path) -> None:
    result = run_app_wrapper(tmp_path / "missing.env", "probe")
    assert result.returncode != 0
    assert "missing.env" in result.stderr


def test_the_app_wrapper_hands_its_role_to_the_image_entrypoint(tmp_path: Path) -> None:
    credentials = tmp_path / "gateway.env"
    credentials.write_text("VAULT_ROLE_ID=placeholder\nVAULT_SECRET_ID=placeholder\n")
    result = run_app_wrapper(credentials, "no-such-role")
    assert result.returncode == 64
    assert "usage: entrypoint" in result.stderr


def test_the_worker_may_stream_backups_from_postgres_and_a_forgotten_slot_cannot_fill_its_disk() -> None:
    postgres = COMPOSE["services"]["postgres"]
    assert "./compose/postgres-replication.sh:/docker-entrypoint-initdb.d/10-replication.sh:ro" in postgres["volumes"]
    script = (DEPLOY / "compose" / "postgres-replication.sh").read_text()
    assert 'echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "${PGDATA}/pg_hba.conf"' in script
    assert "max_slot_wal_keep_size=10GB" in postgres["command"]
    # The worker runs the backup tasks and keeps the store where every app service keeps its state.
    assert "gateway-state:/var/lib/gateway" in COMPOSE["services"]["worker"]["volumes"]
