"""The archive key: it wraps the data keys of audit archives, bound to a community, and outlives the community key."""

from __future__ import annotations

import pytest

from vault.errors import KeyDestroyed, KeyServiceUnavailable
from vault.providers import KeyProvider

NAME = "audit"


def test_an_archive_data_key_unwraps_for_its_own_community_only(provider: KeyProvider) -> None:
    provider.ensure_archive_key(NAME)
    provider.ensure_archive_key(NAME)  # a second call keeps the key

    wrapped = provider.generate_archive_data_key(NAME, "gamma")

    assert len(provider.unwrap_archive_data_key(NAME, "gamma", wrapped.ciphertext)) == 32
    with pytest.raises(KeyDestroyed):
        provider.unwrap_archive_data_key(NAME, "delta", wrapped.ciphertext)


def test_the_archive_key_survives_the_destruction_of_the_community_key(provider: KeyProvider) -> None:
    provider.create_community_key("gamma")
    provider.ensure_archive_key(NAME)
    wrapped = provider.generate_archive_data_key(NAME, "gamma")
    before = provider.unwrap_archive_data_key(NAME, "gamma", wrapped.ciphertext)

    provider.destroy_community_key("gamma")

    with pytest.raises(KeyDestroyed):
        provider.generate_wrapped_key("gamma")
    assert provider.unwrap_archive_data_key(NAME, "gamma", wrapped.ciphertext) == before


def test_a_missing_archive_key_is_a_fault_not_a_shred(provider: KeyProvider, request: pytest.FixtureRequest) -> None:
    if request.node.callspec.params["provider"] == "vault-real":
        pytest.skip("a real Vault may hold archive-audit from an earlier run; its policy grants no other archive key")

    with pytest.raises(KeyServiceUnavailable):
        provider.generate_archive_data_key(NAME, "gamma")  # before anything created it


def test_an_archive_key_name_is_checked(provider: KeyProvider) -> None:
    with pytest.raises(ValueError, match="invalid archive key name"):
        provider.ensure_archive_key("../Audit")
