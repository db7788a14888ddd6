"""Fixtures for key management: the Vault double, and providers to run the same tests against."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings
from django_tenants.utils import schema_context

from tests.doubles.vault import TOKEN, VaultState, running_vault
from vault.keys import cache, community_keys_create
from vault.models import DataKey
from vault.providers import KeyProvider, LocalKeyProvider, VaultTransitProvider


@pytest.fixture
def vault_double() -> Iterator[VaultState]:
    """Settings pointed at a running Vault double (KEY_PROVIDER=vault)."""
    with (
        running_vault() as (address, state),
        override_settings(KEY_PROVIDER="vault", VAULT_ADDR=address, VAULT_TOKEN=TOKEN, VAULT_TIMEOUT_SECONDS=1.0),
    ):
        VaultTransitProvider().configure_mount()
        cache.purge()
        yield state
    cache.purge()


PROVIDERS = ["local", "vault-double"] + (["vault-real"] if os.environ.get("VAULT_ADDR") else [])


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyProvider]:
    """Each provider the tests must hold for: local, the double, and a real Vault when VAULT_ADDR is set."""
    if request.param == "local":
        yield LocalKeyProvider(tmp_path / "keys.json")
    elif request.param == "vault-double":
        with running_vault() as (address, _), override_settings(VAULT_ADDR=address, VAULT_TOKEN=TOKEN):
            real = VaultTransitProvider()
            real.configure_mount()
            yield real
    else:
        with override_settings(VAULT_ADDR=os.environ["VAULT_ADDR"], VAULT_TOKEN=os.environ.get("VAULT_TOKEN", "")):
            real = VaultTransitProvider()
            real.configure_mount()
            yield real


@pytest.fixture(params=["local", "vault-double"])
def key_provider(request: pytest.FixtureRequest, db: None) -> Iterator[str]:
    """Run a test with the local provider and again with the Vault double (alpha and beta re-keyed)."""
    if request.param == "local":
        yield "local"
        return
    vault_state = request.getfixturevalue("vault_double")
    for slug in ("alpha", "beta"):
        with schema_context(slug):
            DataKey.objects.all().delete()
            community_keys_create(slug)
    assert vault_state.keys
    yield "vault-double"
