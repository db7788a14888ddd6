"""The Vault provider against the Vault double, where Vault's own behaviour decides (the conformance review's findings).

Each test names the source file at OpenBao v2.6.2 (or the HashiCorp Vault
change) whose behaviour it takes, through the double.
"""

from __future__ import annotations

import base64
import logging
import re
from typing import Any

import pytest
import requests
from django.test import override_settings

from tests.doubles import vault_transit
from tests.doubles.vault import TOKEN, TransitKey, VaultState, as_root
from tests.doubles.vault_framework import refuse
from tests.doubles.vault_transit import new_key_material
from vault.errors import KeyDestroyed, KeyServiceUnavailable
from vault.providers import VaultTransitProvider

MATERIAL = new_key_material("aes256-gcm96")
SEED = new_key_material("ed25519")


def root(vault: VaultState, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """An operator's request with the root token; the reply."""
    return as_root(vault, method, path, body)


# --- #6: a key found under the service's name is used only with the service's settings --------------------


def _community(provider: VaultTransitProvider) -> None:
    provider.create_community_key("gamma")


def _signing(provider: VaultTransitProvider) -> None:
    provider.ensure_signing_key("audit-checkpoints")


def _archive(provider: VaultTransitProvider) -> None:
    provider.ensure_archive_key("audit")


COMMUNITY, SIGNING, ARCHIVE = "community-gamma", "signing-audit-checkpoints", "archive-audit"
FOUND = {
    "community-not-derived": (
        COMMUNITY,
        _community,
        TransitKey({1: MATERIAL}, derived=False),
        "derived is False, not True",
    ),
    "community-exportable": (
        COMMUNITY,
        _community,
        TransitKey({1: MATERIAL}, exportable=True),
        "exportable is True, not False",
    ),
    "community-plaintext-backup": (
        COMMUNITY,
        _community,
        TransitKey({1: MATERIAL}, allow_plaintext_backup=True),
        "allow_plaintext_backup is True, not False",
    ),
    "community-ed25519": (
        COMMUNITY,
        _community,
        TransitKey({1: SEED}, type="ed25519"),
        "type is 'ed25519', not 'aes256-gcm96'",
    ),
    "community-imported": (COMMUNITY, _community, TransitKey({1: MATERIAL}, imported=True), "imported_key is True"),
    "community-auto-rotating": (
        COMMUNITY,
        _community,
        TransitKey({1: MATERIAL}, auto_rotate_period=86400),
        "auto_rotate_period is 86400, not 0",
    ),
    "community-convergent": (
        COMMUNITY,
        _community,
        TransitKey({1: MATERIAL}, convergent_encryption=True),
        "convergent_encryption is True",
    ),
    "community-soft-deleted": (
        COMMUNITY,
        _community,
        TransitKey({1: MATERIAL}, soft_deleted=True),
        "soft_deleted is True",
    ),
    "signing-auto-rotating": (
        SIGNING,
        _signing,
        TransitKey({1: SEED}, type="ed25519", derived=False, auto_rotate_period=3600),
        "auto_rotate_period is 3600, not 0",
    ),
    "archive-soft-deleted": (ARCHIVE, _archive, TransitKey({1: MATERIAL}, soft_deleted=True), "soft_deleted is True"),
    "signing-derived": (SIGNING, _signing, TransitKey({1: SEED}, type="ed25519"), "derived is True, not False"),
    "signing-exportable": (
        SIGNING,
        _signing,
        TransitKey({1: SEED}, type="ed25519", derived=False, exportable=True),
        "exportable is True, not False",
    ),
    "signing-plaintext-backup": (
        SIGNING,
        _signing,
        TransitKey({1: SEED}, type="ed25519", derived=False, allow_plaintext_backup=True),
        "allow_plaintext_backup is True, not False",
    ),
    "archive-not-derived": (ARCHIVE, _archive, TransitKey({1: MATERIAL}, derived=False), "derived is False, not True"),
    "archive-exportable": (
        ARCHIVE,
        _archive,
        TransitKey({1: MATERIAL}, exportable=True),
        "exportable is True, not False",
    ),
}


@pytest.mark.parametrize(("name", "ensure", "found", "setting"), list(FOUND.values()), ids=list(FOUND))
def test_a_key_found_with_other_settings_is_refused_naming_the_setting(
    vault_double: VaultState, name: str, ensure: Any, found: TransitKey, setting: str, caplog: pytest.LogCaptureFixture
) -> None:
    vault_double.keys[name] = found

    with pytest.raises(KeyServiceUnavailable) as refused:
        ensure(VaultTransitProvider())

    kind = {COMMUNITY: "key", SIGNING: "signing key", ARCHIVE: "archive key"}[name]
    assert refused.value.why == f"vault {kind} {name} is refused: {setting}"
    assert refused.value.why in caplog.text  # the operator learns which setting
    assert base64.b64encode(found.versions[1]).decode() not in refused.value.why + caplog.text
    assert vault_double.keys[name] is found  # left as it was, and refused again on a retry
    with pytest.raises(KeyServiceUnavailable):
        ensure(VaultTransitProvider())


def test_a_key_found_with_the_right_settings_is_used_and_its_deletion_turned_off(vault_double: VaultState) -> None:
    vault_double.keys["community-gamma"] = TransitKey(versions={1: MATERIAL}, deletion_allowed=True)

    provider = VaultTransitProvider()
    provider.create_community_key("gamma")
    wrapped = provider.generate_wrapped_key("gamma")

    assert vault_double.keys["community-gamma"].deletion_allowed is False
    assert len(provider.unwrap("gamma", wrapped.ciphertext)) == 32


def test_creating_over_an_existing_key_changes_nothing_in_vault(vault_double: VaultState) -> None:
    """path_keys.go@v2.6.2:318: 200, the warning "key ... already existed", and the new parameters ignored."""
    vault_double.keys["community-gamma"] = TransitKey(versions={1: MATERIAL}, exportable=True)

    reply = root(vault_double, "POST", "transit/keys/community-gamma", {"type": "aes256-gcm96", "exportable": False})

    assert reply.status == 200
    assert reply.warnings == ["key community-gamma already existed"]
    assert reply.data["exportable"] is True


# --- #5: retiring trims: a retired version is gone, as the local provider's ----------------------------------


def test_retired_versions_are_trimmed_and_a_read_lists_only_the_live_ones(vault_double: VaultState) -> None:
    provider = VaultTransitProvider()
    provider.create_community_key("gamma")
    provider.rotate("gamma")

    provider.retire_versions_below("gamma", 2)

    key = vault_double.keys["community-gamma"]
    assert sorted(key.versions) == [2]  # version 1 is deleted, not archived
    assert (key.min_available_version, key.min_decryption_version, key.min_encryption_version) == (2, 2, 2)
    assert list(root(vault_double, "GET", "transit/keys/community-gamma").data["keys"]) == ["2"]
    assert provider.rotate("gamma") == 3  # and the key goes on: a new version encrypts
    assert provider.generate_wrapped_key("gamma").version == 3


def test_an_operator_lowering_min_decryption_version_after_a_retire_reopens_nothing(
    vault_double: VaultState, settings: Any
) -> None:
    provider = VaultTransitProvider()
    provider.create_community_key("gamma")
    old = provider.generate_wrapped_key("gamma")
    provider.rotate("gamma")
    provider.retire_versions_below("gamma", 2)

    lowered = requests.post(
        f"{settings.VAULT_ADDR}/v1/transit/keys/community-gamma/config",
        json={"min_decryption_version": 1},
        headers={"X-Vault-Token": TOKEN},
        timeout=5,
    )

    assert lowered.status_code == 400
    assert lowered.json() == {"errors": ["min decryption version should not be less then min available version"]}
    with pytest.raises(KeyDestroyed):
        provider.unwrap("gamma", old.ciphertext)


def test_retiring_again_after_an_interruption_changes_nothing(vault_double: VaultState) -> None:
    provider = VaultTransitProvider()
    provider.create_community_key("gamma")
    provider.rotate("gamma")
    provider.retire_versions_below("gamma", 2)

    provider.retire_versions_below("gamma", 2)  # a rotation job resumed after its retire step

    assert sorted(vault_double.keys["community-gamma"].versions) == [2]


def test_without_trim_vault_only_archives_old_versions_and_lowering_brings_them_back(vault_double: VaultState) -> None:
    """keysutil/policy.go@v2.6.2 handleArchiving: what retiring did before it trimmed."""
    provider = VaultTransitProvider()
    provider.create_community_key("gamma")
    old = provider.generate_wrapped_key("gamma")
    provider.rotate("gamma")
    path = "transit/keys/community-gamma"

    assert root(vault_double, "POST", f"{path}/config", {"min_decryption_version": 2}).status == 200
    assert list(root(vault_double, "GET", path).data["keys"]) == ["2"]
    with pytest.raises(KeyDestroyed):
        provider.unwrap("gamma", old.ciphertext)

    assert root(vault_double, "POST", f"{path}/config", {"min_decryption_version": 1}).status == 200
    assert sorted(root(vault_double, "GET", path).data["keys"]) == ["1", "2"]
    assert len(provider.unwrap("gamma", old.ciphertext)) == 32


@pytest.mark.parametrize(
    ("configured", "trim_to", "message"),
    [
        ({}, 1, "minimum available version cannot be set when minimum encryption version is not set"),
        (
            {"min_encryption_version": 1},
            2,
            "minimum available version cannot be greater than minmum encryption version",
        ),
        (
            {"min_encryption_version": 2},
            2,
            "minimum available version cannot be greater than minimum decryption version",
        ),
        ({"min_encryption_version": 2}, 0, "minimum available version should be positive"),
    ],
)
def test_trim_refuses_as_path_trim_go_does(
    vault_double: VaultState, configured: dict[str, int], trim_to: int, message: str
) -> None:
    VaultTransitProvider().create_community_key("gamma")
    VaultTransitProvider().rotate("gamma")
    if configured:
        assert root(vault_double, "POST", "transit/keys/community-gamma/config", configured).status == 200

    reply = root(vault_double, "POST", "transit/keys/community-gamma/trim", {"min_available_version": trim_to})

    assert (reply.status, reply.errors) == (400, [message])
    assert sorted(vault_double.keys["community-gamma"].versions) == [1, 2]


# --- #3: too new is not too old -------------------------------------------------------------------------


def test_a_wrapped_key_newer_than_vaults_key_is_a_fault_not_a_shred(vault_double: VaultState) -> None:
    """policy.go@v2.6.2:1026: "version is too new", as after restoring Vault from a backup older than a rotation."""
    provider = VaultTransitProvider()
    provider.create_community_key("gamma")
    provider.rotate("gamma")
    newer = provider.generate_wrapped_key("gamma")
    del vault_double.keys["community-gamma"].versions[2]  # the restored Vault never saw version 2

    with pytest.raises(KeyServiceUnavailable) as fault:
        provider.unwrap("gamma", newer.ciphertext)

    assert "newer than vault's key (vault restored from an older backup?)" in fault.value.why
    reply = root(vault_double, "POST", "transit/decrypt/community-gamma", {"ciphertext": newer.ciphertext})
    assert reply.errors == ["invalid ciphertext: version is too new"]


def test_a_wrapped_key_older_than_min_decryption_version_is_gone(vault_double: VaultState) -> None:
    provider = VaultTransitProvider()
    provider.create_community_key("gamma")
    old = provider.generate_wrapped_key("gamma")
    provider.rotate("gamma")
    provider.retire_versions_below("gamma", 2)

    with pytest.raises(KeyDestroyed):
        provider.unwrap("gamma", old.ciphertext)
    reply = root(
        vault_double, "POST", "transit/decrypt/community-gamma", {"ciphertext": old.ciphertext, "context": "Z2FtbWE="}
    )
    assert reply.errors == ["ciphertext or signature version is disallowed by policy (too old)"]


# --- #4 and #2: Vaults older than 1.14 and 1.10 ---------------------------------------------------------------


def test_on_a_vault_that_answers_writes_with_204_every_call_still_works(vault_double: VaultState) -> None:
    """Before Vault 1.14.0 (hashicorp/vault#20652) create, config, rotate and trim answered 204."""
    vault_double.mount.write_answers = "empty"
    provider = VaultTransitProvider()
    provider.create_community_key("gamma")
    before = vault_double.calls["read"]

    assert provider.rotate("gamma") == 2  # the version from a read
    assert vault_double.calls["read"] == before + 1
    provider.retire_versions_below("gamma", 2)
    provider.ensure_signing_key("audit-checkpoints")
    assert provider.rotate_signing_key("audit-checkpoints") == 2
    assert sorted(vault_double.keys["community-gamma"].versions) == [2]
    assert root(vault_double, "POST", "transit/keys/community-gamma/rotate").status == 204


def test_an_aead_failure_answered_500_is_a_gone_key_as_on_current_vaults(vault_double: VaultState) -> None:
    """Before Vault 1.10.0 (hashicorp/vault#10914) a failed AEAD open was 500; the same text, the same meaning."""
    vault_double.mount.aead_failure_status = 500
    provider = VaultTransitProvider()
    provider.create_community_key("gamma")
    provider.create_community_key("delta")
    wrapped = provider.generate_wrapped_key("gamma")

    with pytest.raises(KeyDestroyed):
        provider.unwrap("delta", wrapped.ciphertext)
    reply = root(
        vault_double,
        "POST",
        "transit/decrypt/community-delta",
        {"ciphertext": wrapped.ciphertext, "context": "ZGVsdGE="},
    )
    assert reply.status == 500


def test_another_500_stays_a_fault_to_retry(vault_double: VaultState) -> None:
    vault_double.keys["community-gamma"] = TransitKey(versions={1: MATERIAL}, imported=True)

    with pytest.raises(KeyServiceUnavailable):
        VaultTransitProvider().rotate("gamma")  # 500: an imported key does not rotate in Vault


BARRIER_FAILURE = "decryption failed: cipher: message authentication failed"


@pytest.mark.parametrize("step", ["update", "delete"])  # allow deletion (keys/:name/config), then delete
def test_a_storage_barrier_500_at_offboarding_is_a_fault_not_a_key_already_gone(
    vault_double: VaultState, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vault/barrier/aes_gcm.go@v2.6.2:896: a storage entry that does not open is a 500 from any handler."""
    provider = VaultTransitProvider()
    provider.create_community_key("gamma")
    path = "keys/community-gamma" + ("/config" if step == "update" else "")
    route = next(route for route in vault_transit.ROUTES if re.fullmatch(route.pattern, path))
    monkeypatch.setitem(route.operations, step, lambda *args: refuse(BARRIER_FAILURE, 500))

    with pytest.raises(KeyServiceUnavailable):
        provider.destroy_community_key("gamma")

    assert "community-gamma" in vault_double.keys


def test_a_key_vault_says_is_missing_at_offboarding_must_read_as_missing(vault_double: VaultState) -> None:
    """Only a 404 on a read of the exact name confirms "already gone"; a refused config on a live key does not."""
    provider = VaultTransitProvider()
    provider.create_community_key("gamma")
    vault_double.proxy_answers["transit/keys/community-gamma/config"] = (
        400,
        b'{"errors":["no existing key named community-gamma could be found"]}',
        "application/json",
    )

    with pytest.raises(KeyServiceUnavailable) as refused:
        provider.destroy_community_key("gamma")
    assert refused.value.why == "vault said community-gamma is gone but still has it"
    del vault_double.proxy_answers["transit/keys/community-gamma/config"]
    provider.destroy_community_key("gamma")
    provider.destroy_community_key("gamma")  # gone: a read answers 404

    assert "community-gamma" not in vault_double.keys


# --- #8: a failed AppRole login --------------------------------------------------------------------------


@pytest.mark.parametrize("wrong", ["role_id", "secret_id"])
def test_a_refused_approle_login_is_unavailable_and_tells_no_secret(
    approle_vault: VaultState, wrong: str, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = settings.VAULT_SECRET_ID
    setattr(settings, f"VAULT_{wrong.upper()}", "0f5c2b1e-wrong-credential")

    with pytest.raises(KeyServiceUnavailable) as refused:
        VaultTransitProvider().create_community_key("gamma")

    assert refused.value.why == "vault login refused (InvalidRequest)"
    assert "vault login refused (InvalidRequest): check VAULT_ROLE_ID and VAULT_SECRET_ID" in caplog.text
    assert refused.value.__cause__ is None
    assert refused.value.__context__ is None  # hvac's error, whose text may carry the secret ID, is not kept
    assert secret not in caplog.text
    assert "0f5c2b1e-wrong-credential" not in caplog.text
    assert "community-gamma" not in approle_vault.keys


def test_the_double_refuses_a_wrong_credential_as_path_login_go_does(approle_vault: VaultState, settings: Any) -> None:
    url = f"{settings.VAULT_ADDR}/v1/auth/approle/login"

    wrong = requests.post(url, json={"role_id": settings.VAULT_ROLE_ID, "secret_id": "nope"}, timeout=5)
    missing = requests.post(url, json={"role_id": settings.VAULT_ROLE_ID}, timeout=5)
    right = requests.post(
        url, json={"role_id": settings.VAULT_ROLE_ID, "secret_id": settings.VAULT_SECRET_ID}, timeout=5
    )

    assert (wrong.status_code, wrong.json()) == (400, {"errors": ["invalid role or secret ID"]})
    assert (missing.status_code, missing.json()) == (400, {"errors": ["missing secret_id"]})
    assert right.status_code == 200
    assert right.json()["auth"]["token_policies"] == ["gateway-service"]  # no "default" policy


def test_a_secret_id_with_limited_uses_stops_logging_in_when_they_are_spent(
    approle_vault: VaultState, settings: Any
) -> None:
    made = root(approle_vault, "POST", "auth/approle/role/gateway-service/secret-id", {"num_uses": 1})
    url = f"{settings.VAULT_ADDR}/v1/auth/approle/login"
    body = {"role_id": settings.VAULT_ROLE_ID, "secret_id": made.data["secret_id"]}

    assert requests.post(url, json=body, timeout=5).status_code == 200
    assert requests.post(url, json=body, timeout=5).status_code == 400


# --- #16: an answer that is not Vault's --------------------------------------------------------------------


NOT_VAULT = [
    (200, b"<html>maintenance</html>", "text/html"),
    (200, b'{"warnings": []}', "application/json"),
    (200, b"[]", "application/json"),
]
CALLS = {
    "transit/datakey/": lambda provider, wrapped: provider.generate_wrapped_key("gamma"),
    "transit/decrypt/": lambda provider, wrapped: provider.unwrap("gamma", wrapped),
    "transit/keys/": lambda provider, wrapped: provider.rotate("gamma"),  # the answer, then the read
    "transit/sign/": lambda provider, wrapped: provider.sign("audit-checkpoints", b"checkpoint"),
    "auth/approle/login": lambda provider, wrapped: provider.generate_wrapped_key("gamma"),
}


@pytest.mark.parametrize("prefix", list(CALLS))
@pytest.mark.parametrize("answer", NOT_VAULT, ids=["html", "no-data", "a-list"])
def test_a_200_that_is_not_vaults_answer_is_unavailable_not_a_crash(
    approle_vault: VaultState, prefix: str, answer: tuple[int, bytes, str]
) -> None:
    provider = VaultTransitProvider()
    provider.create_community_key("gamma")
    provider.ensure_signing_key("audit-checkpoints")
    wrapped = provider.generate_wrapped_key("gamma").ciphertext
    approle_vault.expire_tokens()  # the next call logs in again
    approle_vault.proxy_answers[prefix] = answer

    with pytest.raises(KeyServiceUnavailable):
        CALLS[prefix](provider, wrapped)


# --- #7: readiness -----------------------------------------------------------------------------------


def test_a_standby_node_is_ready_a_sealed_or_uninitialised_one_is_not(vault_double: VaultState) -> None:
    """http/sys_health.go@v2.6.2: a standby answers 429, or 200 with standbyok (it forwards requests to the active)."""
    vault_double.system.standby = True
    VaultTransitProvider().check_ready()

    vault_double.system.initialized = False
    with pytest.raises(KeyServiceUnavailable):
        VaultTransitProvider().check_ready()
    vault_double.system.initialized = True
    vault_double.sealed = True
    with pytest.raises(KeyServiceUnavailable):
        VaultTransitProvider().check_ready()


def test_sys_health_answers_as_the_server_does(vault_double: VaultState, settings: Any) -> None:
    url = settings.VAULT_ADDR
    vault_double.system.standby = True

    standby = requests.get(f"{url}/v1/sys/health", timeout=5)
    vault_double.sealed = True
    sealed = requests.get(f"{url}/v1/sys/health", timeout=5)
    elsewhere = requests.get(f"{url}/v1/transit/keys/community-alpha", headers={"X-Vault-Token": TOKEN}, timeout=5)

    assert standby.status_code == 429
    assert (sealed.status_code, sealed.json()["sealed"], sealed.json()["initialized"]) == (503, True, True)
    assert (elsewhere.status_code, elsewhere.json()) == (503, {"errors": ["Vault is sealed"]})


# --- #9-#14: the double says what the server says ------------------------------------------------------------


def test_the_double_answers_transit_as_openbao_does(vault_double: VaultState) -> None:
    provider = VaultTransitProvider()
    provider.create_community_key("gamma")
    provider.ensure_signing_key("audit-checkpoints")
    root(vault_double, "POST", "transit/keys/plain", {"type": "aes256-gcm96"})
    context = base64.b64encode(b"anything").decode()

    signed = root(vault_double, "POST", "transit/sign/signing-audit-checkpoints", {"input": "aGk="})
    plain = root(vault_double, "POST", "transit/datakey/wrapped/plain", {"context": context})
    assert signed.data["key_version"] == 1  # path_sign_verify.go:483
    assert root(vault_double, "POST", "transit/sign/signing-none", {"input": "aGk="}).errors == [
        "signing key not found"
    ]
    # A key that is not derived ignores the context (policy.go GetKey), so another context opens it.
    opened = root(vault_double, "POST", "transit/decrypt/plain", {"ciphertext": plain.data["ciphertext"]})
    assert opened.status == 200
    assert root(vault_double, "POST", "transit/decrypt/community-gamma", {"ciphertext": "vault:v1:AAAA"}).errors == [
        "missing 'context' for key derivation; the key was created using a derived key, which means additional, "
        "per-request information must be included in order to perform operations with the key"
    ]
    assert root(vault_double, "POST", "transit/config/keys", {"disable_upsert": True}).data == {"disable_upsert": True}
    assert root(vault_double, "DELETE", "transit/keys/community-gamma").errors == [
        "error deleting policy community-gamma: deletion is not allowed for this key"
    ]
    assert root(vault_double, "POST", "transit/keys/community-gamma/config", {"min_decryption_version": 5}).errors == [
        "cannot set min decryption version of 5, latest key version is 1"
    ]


def test_an_unknown_field_is_ignored_with_a_warning_and_a_wrong_type_refused(vault_double: VaultState) -> None:
    """sdk/framework/backend.go@v2.6.2:222-303 and field_data.go Validate."""
    unknown = root(vault_double, "POST", "transit/keys/community-gamma", {"type": "aes256-gcm96", "colour": "blue"})
    wrong = root(vault_double, "POST", "transit/keys/community-delta", {"derived": "maybe"})

    assert unknown.status == 200
    assert unknown.warnings == ["Endpoint ignored these unrecognized parameters: [colour]"]
    assert wrong.status == 400
    assert wrong.errors[0].startswith('Field validation failed: error converting input for field "derived"')
    assert "community-delta" not in vault_double.keys
    vault_double.ignored.clear()  # this test sent them on purpose, as root


def test_a_token_outside_its_bound_cidrs_is_refused(vault_double: VaultState) -> None:
    token = vault_double.system.issue_token(["gateway-service"], bound_cidrs=["10.0.0.0/8"])

    with override_settings(VAULT_TOKEN=token), pytest.raises(KeyServiceUnavailable):
        VaultTransitProvider().create_community_key("gamma")
