"""``deploy/vault/bootstrap.sh`` against the Vault double: what it leaves, that running it again changes nothing.

The script runs as an operator would run it (bash, curl, jq), with the
double's root token; the double answers its sys and AppRole requests as
OpenBao v2.6.2 does (:mod:`tests.doubles.vault_system`).
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.doubles.vault import POLICY_NAME, ROLE_NAME, SHIPPED_POLICY, TOKEN, ServiceCredentials, VaultState, bootstrap
from tests.doubles.vault import running_vault as vault
from tests.doubles.vault_system import AuditDevice, Mount
from tests.doubles.vault_transit import TransitKey, TransitMount, new_key_material
from tests.support.vault_policy import PolicyUsage
from tests.vault.every_call import every_vault_call

SCRIPT = SHIPPED_POLICY.with_name("bootstrap.sh")
OPENER_POLICY = SHIPPED_POLICY.with_name("audit-opener.hcl")


def bootstrap_sh(address: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """The script, with the double's address and root token, and nothing else of this process's environment."""
    environment = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "VAULT_ADDR": address, "VAULT_TOKEN": TOKEN}
    return subprocess.run(  # noqa: S603 - our own script, fixed arguments
        ["bash", str(SCRIPT), *arguments],  # noqa: S607 - bash from PATH, as an operator runs it
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def role(state: VaultState) -> Any:
    return state.system.roles["approle/"][ROLE_NAME]


def snapshot(state: VaultState) -> dict[str, Any]:
    """Everything the script may change, in a comparable form."""
    return {
        "mounts": {path: (mount.type, mount.description) for path, mount in state.system.mounts.items()},
        "auth": {path: (mount.type, mount.description) for path, mount in state.system.auth.items()},
        "policies": {name: policy.text for name, policy in state.system.policies.items()},
        "audit": {path: (device.type, device.options) for path, device in state.system.audit.items()},
        "role": (role(state).role_id, role(state).settings(), sorted(role(state).secret_ids)),
        "upsert": state.mount.disable_upsert,
        "keys": {
            name: (key.type, key.derived, key.exportable, key.deletion_allowed, sorted(key.versions))
            for name, key in state.keys.items()
        },
    }


@pytest.fixture
def blank() -> Any:
    """A Vault that has never been bootstrapped, that lets the API enable audit devices (as HashiCorp Vault does)."""
    with vault(bootstrapped=False) as (address, state):
        state.system.audit_api_enabled = True
        yield address, state


def test_the_script_is_valid_bash() -> None:
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)  # noqa: S603, S607

    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(SCRIPT.stat().st_mode) & 0o111


def test_the_script_prepares_vault_as_the_service_needs_it(blank: tuple[str, VaultState]) -> None:
    address, state = blank

    result = bootstrap_sh(address)

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"VAULT_ROLE_ID={role(state).role_id}\n"
    assert state.system.audit["gateway-file/"].options == {"file_path": "/var/log/vault/audit.log"}
    assert state.system.mounts["transit/"].type == "transit"
    assert state.mount.disable_upsert is True
    assert state.system.policies[POLICY_NAME].text == SHIPPED_POLICY.read_text(encoding="utf-8")
    assert state.system.policies["audit-opener"].text == OPENER_POLICY.read_text(encoding="utf-8")
    assert state.system.auth["approle/"].type == "approle"
    settings = role(state).settings()
    assert settings["token_policies"] == [POLICY_NAME]
    assert settings["token_no_default_policy"] is True
    assert (settings["token_ttl"], settings["token_max_ttl"]) == (15 * 60, 30 * 60)
    assert (settings["secret_id_ttl"], settings["secret_id_num_uses"]) == (720 * 3600, 0)
    assert (settings["secret_id_bound_cidrs"], settings["token_bound_cidrs"]) == ([], [])
    assert role(state).secret_ids == {}  # none made unless asked
    signing = state.keys["signing-audit-checkpoints"]
    assert (signing.type, signing.derived, signing.exportable, signing.deletion_allowed) == (
        "ed25519",
        False,
        False,
        False,
    )
    for archive in (state.keys["archive-audit"], state.keys["archive-backup"]):  # the backup key is an archive key
        assert (archive.type, archive.derived, archive.exportable, archive.deletion_allowed) == (
            "aes256-gcm96",
            True,
            False,
            False,
        )


def test_the_service_works_against_a_vault_the_script_prepared(blank: tuple[str, VaultState]) -> None:
    address, state = blank
    assert bootstrap_sh(address).returncode == 0
    made = requests.post(
        f"{address}/v1/auth/approle/role/{ROLE_NAME}/secret-id", headers={"X-Vault-Token": TOKEN}, timeout=5
    ).json()["data"]
    usage = PolicyUsage()
    state.observers.append(usage.record)

    every_vault_call(address, state, ServiceCredentials("", role(state).role_id, made["secret_id"]))

    assert usage.refusals() == []


def test_a_second_run_changes_nothing_and_succeeds(blank: tuple[str, VaultState]) -> None:
    address, state = blank
    assert bootstrap_sh(address).returncode == 0
    before = snapshot(state)

    again = bootstrap_sh(address)

    assert again.returncode == 0, again.stderr
    assert snapshot(state) == before
    assert "policy: gateway-service is up to date" in again.stderr
    assert "audit: gateway-file/ is enabled" in again.stderr


def test_the_fixtures_bootstrap_leaves_what_the_script_leaves(blank: tuple[str, VaultState]) -> None:
    address, scripted = blank
    assert bootstrap_sh(address, "--no-keys", "--no-audit-opener").returncode == 0
    helper = VaultState()
    bootstrap(helper)

    for state in (scripted, helper):
        role(state).role_id = "same"
        role(state).secret_ids.clear()
    left = {key: value for key, value in snapshot(scripted).items() if key != "audit"}
    assert left == {key: value for key, value in snapshot(helper).items() if key != "audit"}


def test_on_openbao_without_an_audit_device_the_script_stops_first_and_says_what_to_do() -> None:
    with vault(bootstrapped=False) as (address, state):
        result = bootstrap_sh(address)

    assert result.returncode == 1
    assert "enables them only from its configuration: declare one there" in result.stderr
    assert "transit/" not in state.system.mounts  # nothing done before there is an audit device


def test_on_openbao_an_audit_device_of_its_configuration_is_kept() -> None:
    with vault(bootstrapped=False) as (address, state):
        state.system.audit["file/"] = AuditDevice("file", {"file_path": "/vault/audit.log"}, declared=True)

        result = bootstrap_sh(address)

    assert result.returncode == 0, result.stderr
    assert "takes audit devices from its configuration; file/ enabled there" in result.stderr
    assert list(state.system.audit) == ["file/"]
    assert state.system.mounts["transit/"].type == "transit"


def test_a_new_secret_id_goes_to_a_0600_file_and_nowhere_else(blank: tuple[str, VaultState], tmp_path: Path) -> None:
    address, state = blank
    target = tmp_path / "secret-id"

    result = bootstrap_sh(address, "--new-secret-id", str(target))

    secret = target.read_text(encoding="utf-8").strip()
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert secret in role(state).secret_ids
    assert secret not in result.stdout + result.stderr
    login = {"role_id": role(state).role_id, "secret_id": secret}
    assert requests.post(f"{address}/v1/auth/approle/login", json=login, timeout=5).status_code == 200
    refused = bootstrap_sh(address, "--new-secret-id", str(target))
    assert refused.returncode == 1
    assert "exists" in refused.stderr
    assert len(role(state).secret_ids) == 1


def test_a_new_secret_id_on_stdout_when_asked_with_a_dash(blank: tuple[str, VaultState]) -> None:
    address, state = blank

    result = bootstrap_sh(address, "--new-secret-id", "-")

    (secret,) = role(state).secret_ids
    assert result.stdout == f"VAULT_ROLE_ID={role(state).role_id}\nVAULT_SECRET_ID={secret}\n"
    assert secret not in result.stderr


def test_networks_bind_secret_ids_and_tokens_and_a_run_without_unbinds_them(blank: tuple[str, VaultState]) -> None:
    address, state = blank

    assert bootstrap_sh(address, "--cidr", "10.0.0.0/8,192.168.0.0/16").returncode == 0
    bound = role(state).settings()
    made = requests.post(
        f"{address}/v1/auth/approle/role/{ROLE_NAME}/secret-id", headers={"X-Vault-Token": TOKEN}, timeout=5
    ).json()["data"]
    login = requests.post(
        f"{address}/v1/auth/approle/login",
        json={"role_id": role(state).role_id, "secret_id": made["secret_id"]},
        timeout=5,
    )
    assert bootstrap_sh(address).returncode == 0

    assert bound["secret_id_bound_cidrs"] == bound["token_bound_cidrs"] == ["10.0.0.0/8", "192.168.0.0/16"]
    assert login.status_code == 400  # the double listens on 127.0.0.1, outside both
    assert "unauthorized by CIDR restrictions" in login.json()["errors"][0]
    assert role(state).settings()["secret_id_bound_cidrs"] == []


def test_another_mount_rewrites_the_policy_for_it(blank: tuple[str, VaultState]) -> None:
    address, state = blank

    assert bootstrap_sh(address, "--mount", "keys", "--no-keys").returncode == 0

    assert state.system.mounts["keys/"].type == "transit"
    text = state.system.policies[POLICY_NAME].text
    assert 'path "keys/keys/community-*"' in text
    assert 'path "transit/' not in text


@pytest.mark.parametrize(
    ("found", "message"),
    [
        (
            TransitKey(versions={1: new_key_material("ed25519")}, type="ed25519", derived=False, exportable=True),
            "other settings",
        ),
        (TransitKey(versions={1: new_key_material("aes256-gcm96")}), "other settings"),
    ],
    ids=["exportable", "not-ed25519"],
)
def test_a_signing_key_found_with_other_settings_stops_the_script(
    blank: tuple[str, VaultState], found: TransitKey, message: str
) -> None:
    address, state = blank
    state.system.mounts["transit/"] = Mount("transit")
    state.transit["transit/"] = TransitMount()
    state.keys["signing-audit-checkpoints"] = found

    result = bootstrap_sh(address)

    assert result.returncode == 1
    assert message in result.stderr
    assert state.keys["signing-audit-checkpoints"] is found


def test_a_mount_of_another_type_at_the_path_stops_the_script(blank: tuple[str, VaultState]) -> None:
    address, state = blank
    state.system.mounts["transit/"] = Mount("kv")

    result = bootstrap_sh(address)

    assert result.returncode == 1
    assert "transit/ is already a kv mount" in result.stderr


def test_a_dangling_symlink_at_the_secret_id_path_is_refused_not_followed(
    blank: tuple[str, VaultState], tmp_path: Path
) -> None:
    address, state = blank
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / "secret-id").symlink_to(elsewhere)

    result = bootstrap_sh(address, "--new-secret-id", str(tmp_path / "secret-id"))

    assert result.returncode == 1
    assert "exists" in result.stderr
    assert not elsewhere.exists()
    assert not state.system.roles.get("approle/")  # refused before anything was done


def test_a_new_secret_id_alone_leaves_the_role_and_everything_else_as_they_were(
    blank: tuple[str, VaultState], tmp_path: Path
) -> None:
    address, state = blank
    assert bootstrap_sh(address, "--cidr", "10.0.0.0/8").returncode == 0
    before = snapshot(state)

    result = bootstrap_sh(address, "--secret-id-only", "--new-secret-id", str(tmp_path / "secret-id"))

    assert result.returncode == 0, result.stderr
    after = snapshot(state)
    (secret,) = role(state).secret_ids
    assert {**after, "role": after["role"][:2]} == {**before, "role": before["role"][:2]}  # CIDRs still bound
    assert (tmp_path / "secret-id").read_text(encoding="utf-8") == f"{secret}\n"
    accessor = role(state).secret_ids[secret].accessor
    assert f"accessor {accessor}" in result.stderr  # to destroy the previous one by, later
    assert secret not in result.stderr


def test_an_answer_without_the_role_id_stops_the_script_rather_than_print_null(blank: tuple[str, VaultState]) -> None:
    address, state = blank
    state.proxy_answers[f"auth/approle/role/{ROLE_NAME}/role-id"] = (200, b'{"data": {}}', "application/json")

    result = bootstrap_sh(address, "--no-keys")

    assert result.returncode != 0
    assert "null" not in result.stdout
