"""Ed25519 signing keys: both providers sign, rotate and publish alike, and Vault's faults fail closed."""

from __future__ import annotations

import base64
import json
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.test import override_settings

from tests.doubles.vault import TOKEN, TransitKey, VaultState
from vault.errors import KeyServiceUnavailable
from vault.providers import LocalKeyProvider, Signer, VaultTransitProvider

CHECKPOINT = b"checkpoint|alpha|1042|9f86d081884c7d65"


def signing_name() -> str:
    """A new key under the default name, which the shipped Vault policy grants (``signing-audit-checkpoints*``)."""
    return f"audit-checkpoints-{uuid.uuid4().hex[:12]}"


def verifies(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def test_a_signature_verifies_with_the_published_key_of_its_version(provider: Signer) -> None:
    name = signing_name()
    provider.ensure_signing_key(name)

    signed = provider.sign(name, CHECKPOINT)
    published = provider.signing_public_keys(name)

    assert signed.key_version == 1
    assert len(signed.signature) == 64
    assert list(published) == [1]
    assert len(published[1]) == 32
    assert verifies(published[1], signed.signature, CHECKPOINT)


def test_a_signature_does_not_verify_for_another_message(provider: Signer) -> None:
    name = signing_name()
    provider.ensure_signing_key(name)

    signed = provider.sign(name, CHECKPOINT)

    assert not verifies(provider.signing_public_keys(name)[1], signed.signature, CHECKPOINT + b"!")


def test_rotation_adds_a_version_and_old_signatures_still_verify(provider: Signer) -> None:
    name = signing_name()
    provider.ensure_signing_key(name)
    old = provider.sign(name, CHECKPOINT)

    assert provider.rotate_signing_key(name) == 2
    new = provider.sign(name, CHECKPOINT)
    published = provider.signing_public_keys(name)

    assert new.key_version == 2
    assert sorted(published) == [1, 2]
    assert published[1] != published[2]
    assert verifies(published[1], old.signature, CHECKPOINT)
    assert verifies(published[2], new.signature, CHECKPOINT)
    assert not verifies(published[2], old.signature, CHECKPOINT)


def test_ensuring_a_signing_key_twice_keeps_the_first(provider: Signer) -> None:
    name = signing_name()
    provider.ensure_signing_key(name)
    first = provider.signing_public_keys(name)

    provider.ensure_signing_key(name)

    assert provider.signing_public_keys(name) == first


def test_a_missing_signing_key_is_unavailable_and_never_created(provider: Signer) -> None:
    name = signing_name()

    with pytest.raises(KeyServiceUnavailable):
        provider.sign(name, CHECKPOINT)
    with pytest.raises(KeyServiceUnavailable):
        provider.signing_public_keys(name)
    with pytest.raises(KeyServiceUnavailable):
        provider.rotate_signing_key(name)
    with pytest.raises(KeyServiceUnavailable):
        provider.signing_public_keys(name)  # still missing: none of the calls above created it


@pytest.mark.parametrize(
    "name",
    ["", "ab", "Audit-log", "audit_log", "audit/../keys", "audit log", "audit-", "-audit", "audit\n", "a" * 41],
)
def test_invalid_signing_key_names_are_refused(provider: Signer, name: str) -> None:
    with pytest.raises(ValueError, match="signing key name"):
        provider.ensure_signing_key(name)
    with pytest.raises(ValueError, match="signing key name"):
        provider.sign(name, CHECKPOINT)
    with pytest.raises(ValueError, match="signing key name"):
        provider.signing_public_keys(name)
    with pytest.raises(ValueError, match="signing key name"):
        provider.rotate_signing_key(name)


# --- local provider ------------------------------------------------------------------


def test_local_signing_keys_live_beside_community_keys_in_the_0600_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    provider = LocalKeyProvider(path)
    provider.create_community_key("alpha")

    provider.ensure_signing_key("audit-checkpoints")

    store = json.loads(path.read_text())
    assert list(store["communities"]) == ["alpha"]
    assert list(store["signing"]["audit-checkpoints"]["versions"]) == ["1"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(provider.generate_wrapped_key("alpha").ciphertext) > 0


def test_a_local_key_file_readable_by_others_signs_nothing(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    LocalKeyProvider(path).ensure_signing_key("audit-checkpoints")
    path.chmod(0o644)

    with pytest.raises(KeyServiceUnavailable):
        LocalKeyProvider(path).sign("audit-checkpoints", CHECKPOINT)


# --- Vault Transit -------------------------------------------------------------------


def test_the_vault_key_is_ed25519_not_exportable_and_not_deletable(vault_double: VaultState) -> None:
    provider = VaultTransitProvider()
    name = signing_name()

    provider.ensure_signing_key(name)
    provider.ensure_signing_key(name)

    key = vault_double.keys[f"signing-{name}"]
    assert key.type == "ed25519"
    assert key.exportable is False
    assert key.deletion_allowed is False
    assert vault_double.calls["create"] == 1  # the second call read the key and stopped there
    assert not any(stored.startswith("community-") for stored in vault_double.keys)


def test_signing_never_creates_a_vault_key(vault_double: VaultState) -> None:
    provider = VaultTransitProvider()

    with pytest.raises(KeyServiceUnavailable):
        provider.sign(signing_name(), CHECKPOINT)

    assert vault_double.keys == {}


def test_a_key_of_another_type_under_the_signing_name_is_refused(vault_double: VaultState) -> None:
    provider = VaultTransitProvider()
    vault_double.keys["signing-audit-checkpoints"] = TransitKey(versions={1: AESGCM.generate_key(bit_length=256)})

    with pytest.raises(KeyServiceUnavailable):
        provider.ensure_signing_key("audit-checkpoints")
    with pytest.raises(KeyServiceUnavailable):
        provider.signing_public_keys("audit-checkpoints")
    with pytest.raises(KeyServiceUnavailable):
        provider.sign("audit-checkpoints", CHECKPOINT)


@pytest.mark.parametrize("fault", ["sealed", "deny"])
def test_a_sealed_or_refusing_vault_signs_nothing(fault: str, vault_double: VaultState) -> None:
    provider = VaultTransitProvider()
    name = signing_name()
    provider.ensure_signing_key(name)
    setattr(vault_double, fault, True)

    with pytest.raises(KeyServiceUnavailable):
        provider.sign(name, CHECKPOINT)
    with pytest.raises(KeyServiceUnavailable):
        provider.signing_public_keys(name)
    with pytest.raises(KeyServiceUnavailable):
        provider.rotate_signing_key(name)
    with pytest.raises(KeyServiceUnavailable):
        provider.ensure_signing_key(name)


def test_an_unreachable_vault_signs_nothing() -> None:
    with override_settings(VAULT_ADDR="http://127.0.0.1:1", VAULT_TOKEN=TOKEN, VAULT_TIMEOUT_SECONDS=0.5):
        provider = VaultTransitProvider()
        with pytest.raises(KeyServiceUnavailable):
            provider.ensure_signing_key("audit-checkpoints")
        with pytest.raises(KeyServiceUnavailable):
            provider.sign("audit-checkpoints", CHECKPOINT)


def _signature_answer(text: Any) -> dict[str, Any]:
    return {"data": {"signature": text}}


_SIXTY_FOUR = base64.b64encode(bytes(range(64))).decode()


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"data": None},
        _signature_answer(None),
        _signature_answer(42),
        _signature_answer(""),
        _signature_answer(f"vault:v0:{_SIXTY_FOUR}"),
        _signature_answer(f"vault:vx:{_SIXTY_FOUR}"),
        _signature_answer(f"vault:v-1:{_SIXTY_FOUR}"),
        _signature_answer(f"local:v1:{_SIXTY_FOUR}"),
        _signature_answer(f"vault:v1:{_SIXTY_FOUR}\n"),
        _signature_answer(f"vault:v1:{_SIXTY_FOUR}:extra"),
        _signature_answer("vault:v1:" + base64.b64encode(bytes(63)).decode()),
        _signature_answer("vault:v1:" + base64.b64encode(bytes(65)).decode()),
        _signature_answer("vault:v1:" + base64.urlsafe_b64encode(bytes([251]) * 64).decode()),
        _signature_answer("vault:v1:" + _SIXTY_FOUR.rstrip("=")),
        _signature_answer("vault:v1:" + _SIXTY_FOUR[:-3] + "x=="),  # "Pw==" with trailing bits set
    ],
    ids=lambda answer: json.dumps(answer)[-28:],
)
def test_a_malformed_signature_answer_is_unavailable(answer: dict[str, Any], vault_double: VaultState) -> None:
    provider = VaultTransitProvider()
    provider.ensure_signing_key("audit-checkpoints")
    vault_double.mount.sign_answer = answer

    with pytest.raises(KeyServiceUnavailable):
        provider.sign("audit-checkpoints", CHECKPOINT)


def test_the_key_version_is_the_one_vault_names_in_its_answer(vault_double: VaultState) -> None:
    provider = VaultTransitProvider()
    provider.ensure_signing_key("audit-checkpoints")
    vault_double.mount.sign_answer = _signature_answer(f"vault:v7:{_SIXTY_FOUR}")

    assert provider.sign("audit-checkpoints", CHECKPOINT).key_version == 7


def test_a_key_prefix_that_lets_a_community_key_take_the_signing_name_is_refused(vault_double: VaultState) -> None:
    with override_settings(VAULT_KEY_PREFIX="signing-"):
        provider = VaultTransitProvider()
        with pytest.raises(ValueError, match="could be the key of a community"):
            provider.ensure_signing_key("alpha")  # signing-alpha is community alpha's key under that prefix
        provider.ensure_signing_key("audit-checkpoints")  # a hyphen: never a community slug

    assert "signing-alpha" not in vault_double.keys
    assert "signing-audit-checkpoints" in vault_double.keys
