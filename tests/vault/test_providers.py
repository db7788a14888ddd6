"""Both providers (and a real Vault when VAULT_ADDR is set) keep the same promises."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from tests.doubles.vault import TOKEN, VaultState
from tests.support.vault_policy import credentials, service_vault
from vault.errors import KeyDestroyed, KeyServiceUnavailable
from vault.providers import KeyWrapper, LocalKeyProvider, VaultTransitProvider, wrapped_version


def community() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def test_a_wrapped_data_key_unwraps_to_256_bits(provider: KeyWrapper) -> None:
    name = community()
    provider.create_community_key(name)

    wrapped = provider.generate_wrapped_key(name)

    assert wrapped.version == 1
    assert wrapped.ciphertext.startswith(("vault:v1:", "local:v1:"))
    assert len(provider.unwrap(name, wrapped.ciphertext)) == 32


def test_a_key_wraps_for_its_own_community_only(provider: KeyWrapper) -> None:
    first, second = community(), community()
    provider.create_community_key(first)
    provider.create_community_key(second)
    wrapped = provider.generate_wrapped_key(first)

    with pytest.raises((KeyDestroyed, KeyServiceUnavailable)):
        provider.unwrap(second, wrapped.ciphertext)


def test_rotation_keeps_old_versions_until_they_are_retired(provider: KeyWrapper) -> None:
    name = community()
    provider.create_community_key(name)
    old = provider.generate_wrapped_key(name)

    assert provider.rotate(name) == 2
    new = provider.generate_wrapped_key(name)
    assert wrapped_version(new.ciphertext) == 2
    assert len(provider.unwrap(name, old.ciphertext)) == 32

    provider.retire_versions_below(name, 2)
    with pytest.raises(KeyDestroyed):
        provider.unwrap(name, old.ciphertext)
    assert len(provider.unwrap(name, new.ciphertext)) == 32


def test_a_destroyed_key_unwraps_nothing_ever_again(provider: KeyWrapper) -> None:
    name = community()
    provider.create_community_key(name)
    wrapped = provider.generate_wrapped_key(name)

    provider.destroy_community_key(name)

    with pytest.raises(KeyDestroyed):
        provider.unwrap(name, wrapped.ciphertext)
    with pytest.raises(KeyDestroyed):
        provider.generate_wrapped_key(name)


def test_the_double_keeps_vaults_rules() -> None:
    with (
        service_vault() as (address, state),
        override_settings(VAULT_ADDR=address, VAULT_TOKEN=credentials(state).token),
    ):
        provider = VaultTransitProvider()
        provider.configure_mount()
        name = community()
        provider.create_community_key(name)
        key = state.keys[f"community-{name}"]

        assert state.mount.disable_upsert  # an encrypt call can never create a key
        assert key.derived
        assert key.deletion_allowed is False


@pytest.mark.parametrize("fault", ["sealed", "deny"])
def test_a_sealed_or_refusing_vault_is_unavailable(fault: str, vault_double: VaultState) -> None:
    provider = VaultTransitProvider()
    name = community()
    provider.create_community_key(name)
    wrapped = provider.generate_wrapped_key(name)
    setattr(vault_double, fault, True)

    with pytest.raises(KeyServiceUnavailable):
        provider.unwrap(name, wrapped.ciphertext)
    with pytest.raises(KeyServiceUnavailable):
        provider.generate_wrapped_key(name)


def test_an_unreachable_vault_is_unavailable() -> None:
    with override_settings(VAULT_ADDR="http://127.0.0.1:1", VAULT_TOKEN=TOKEN, VAULT_TIMEOUT_SECONDS=0.5):
        provider = VaultTransitProvider()
        with pytest.raises(KeyServiceUnavailable):
            provider.generate_wrapped_key("alpha")
        with pytest.raises(KeyServiceUnavailable):
            provider.check_ready()


def test_approle_login_is_used_when_no_token_is_set(approle_vault: VaultState) -> None:
    provider = VaultTransitProvider()
    name = community()
    provider.create_community_key(name)

    assert f"community-{name}" in approle_vault.keys


def test_a_sealed_vault_is_not_ready(vault_double: VaultState) -> None:
    VaultTransitProvider().check_ready()
    vault_double.sealed = True

    with pytest.raises(KeyServiceUnavailable):
        VaultTransitProvider().check_ready()


def test_configure_vault_turns_upsert_off(vault_double: VaultState) -> None:
    vault_double.mount.disable_upsert = False
    out = io.StringIO()

    call_command("configure_vault", stdout=out)

    assert vault_double.mount.disable_upsert
    assert "disable_upsert on" in out.getvalue()


def test_configure_vault_refuses_without_vault(settings: Any) -> None:
    settings.KEY_PROVIDER = "local"

    with pytest.raises(CommandError, match="not vault"):
        call_command("configure_vault", stdout=io.StringIO())


def test_destroying_a_key_twice_finishes_quietly(provider: KeyWrapper) -> None:
    name = community()
    provider.create_community_key(name)

    provider.destroy_community_key(name)
    provider.destroy_community_key(name)  # an offboarding retried after a failure

    with pytest.raises(KeyDestroyed):
        provider.generate_wrapped_key(name)


def test_an_expired_approle_token_logs_in_again(approle_vault: VaultState) -> None:
    provider = VaultTransitProvider()
    name = community()
    provider.create_community_key(name)
    approle_vault.expire_tokens()

    assert provider.generate_wrapped_key(name).version == 1


def test_a_tampered_wrapped_key_is_gone_not_retryable(provider: KeyWrapper) -> None:
    name = community()
    provider.create_community_key(name)
    wrapped = provider.generate_wrapped_key(name).ciphertext
    tampered = wrapped[:-6] + ("AAAAAA" if not wrapped.endswith("AAAAAA") else "BBBBBB")

    with pytest.raises(KeyDestroyed):
        provider.unwrap(name, tampered)


def test_a_local_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    LocalKeyProvider(path).create_community_key("alpha")
    path.chmod(0o644)

    with pytest.raises(KeyServiceUnavailable):
        LocalKeyProvider(path).generate_wrapped_key("alpha")
