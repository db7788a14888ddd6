"""Fixtures for key management: the Vault double as the service meets it, and providers to run the same tests against.

Every double here is bootstrapped as ``deploy/vault/bootstrap.sh`` leaves a
Vault, and the service reaches it with a token (or AppRole credentials) bound
to the shipped policy, ``deploy/vault/gateway-service.hcl``: a call the
policy does not grant is a 403, and fails the test at teardown even when the
test expected ``KeyServiceUnavailable``; so does a request field Vault would
ignore. The ACL decisions also go to the session's record
(:mod:`tests.support.vault_policy`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings
from django_tenants.utils import schema_context

from tests.doubles.vault import VaultState
from tests.support.vault_policy import credentials, service_vault
from vault.keys import cache, community_keys_create
from vault.models import DataKey
from vault.providers import KeyProvider, LocalKeyProvider, VaultTransitProvider


@pytest.fixture
def vault_double() -> Iterator[VaultState]:
    """Settings pointed at a running Vault double (KEY_PROVIDER=vault), with the service's token."""
    with (
        service_vault() as (address, state),
        override_settings(
            KEY_PROVIDER="vault",
            VAULT_ADDR=address,
            VAULT_TOKEN=credentials(state).token,
            VAULT_TIMEOUT_SECONDS=1.0,
        ),
    ):
        VaultTransitProvider().configure_mount()
        cache.purge()
        yield state
    cache.purge()


@pytest.fixture
def approle_vault() -> Iterator[VaultState]:
    """The Vault double, reached with the service's AppRole credentials only (no token)."""
    with (
        service_vault() as (address, state),
        override_settings(
            VAULT_ADDR=address,
            VAULT_TOKEN="",
            VAULT_ROLE_ID=credentials(state).role_id,
            VAULT_SECRET_ID=credentials(state).secret_id,
        ),
    ):
        yield state


PROVIDERS = ["local", "vault-double"] + (["vault-real"] if os.environ.get("VAULT_ADDR") else [])


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyProvider]:
    """Each provider the tests must hold for: local, the double, and a real Vault when VAULT_ADDR is set.

    Against a real Vault, ``VAULT_TOKEN`` (or ``VAULT_ROLE_ID`` and
    ``VAULT_SECRET_ID``) should be bound to the shipped policy, as the double's is.
    """
    if request.param == "local":
        yield LocalKeyProvider(tmp_path / "keys.json")
    elif request.param == "vault-double":
        with (
            service_vault() as (address, state),
            override_settings(VAULT_ADDR=address, VAULT_TOKEN=credentials(state).token),
        ):
            real = VaultTransitProvider()
            real.configure_mount()
            yield real
    else:
        with override_settings(
            VAULT_ADDR=os.environ["VAULT_ADDR"],
            VAULT_TOKEN=os.environ.get("VAULT_TOKEN", ""),
            VAULT_ROLE_ID=os.environ.get("VAULT_ROLE_ID", ""),
            VAULT_SECRET_ID=os.environ.get("VAULT_SECRET_ID", ""),
            VAULT_CACERT=os.environ.get("VAULT_CACERT", ""),
        ):
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
