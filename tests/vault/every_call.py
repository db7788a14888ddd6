"""Every provider method that talks to Vault, once each: what the shipped policy must grant.

Methods, not a trace of production: ``rotate_signing_key`` is here though no
command calls it yet.

Used by ``test_policy.py`` (the policy grants exactly these, and refuses the
service when one of its paths is removed) and ``test_bootstrap.py`` (the
service works against a Vault the script prepared).
"""

from __future__ import annotations

from django.test import override_settings

from tests.doubles.vault import ServiceCredentials, TransitKey, VaultState
from tests.doubles.vault_transit import new_key_material
from vault.providers import VaultTransitProvider

COMMUNITY = "gamma"
FOUND = "delta"  # its keys exist before the service looks, with deletion allowed
BACKUP_OBJECT = "wal/000000010000000000000001"  # a backup object: its name is the backup key's context


def every_vault_call(address: str, state: VaultState, service: ServiceCredentials) -> None:
    """Readiness, AppRole login, and every provider method that talks to Vault, through ``service``'s role."""
    _keys_found_with_deletion_allowed(state)
    with override_settings(
        VAULT_ADDR=address, VAULT_TOKEN="", VAULT_ROLE_ID=service.role_id, VAULT_SECRET_ID=service.secret_id
    ):
        provider = VaultTransitProvider()
        provider.check_ready()
        provider.configure_mount()
        provider.create_community_key(COMMUNITY)
        wrapped = provider.generate_wrapped_key(COMMUNITY)
        provider.unwrap(COMMUNITY, wrapped.ciphertext)
        provider.rotate(COMMUNITY)
        provider.retire_versions_below(COMMUNITY, 2)
        provider.destroy_community_key(COMMUNITY)
        provider.ensure_signing_key("audit-checkpoints")
        provider.sign("audit-checkpoints", b"checkpoint|public|1|00")
        provider.signing_public_keys("audit-checkpoints")
        provider.rotate_signing_key("audit-checkpoints")  # no command calls it yet (keys.md)
        provider.ensure_archive_key("audit")
        archived = provider.generate_archive_data_key("audit", COMMUNITY)
        provider.unwrap_archive_data_key("audit", COMMUNITY, archived.ciphertext)
        provider.ensure_archive_key("backup")  # operations/backups/store.py, per object
        backed_up = provider.generate_archive_data_key("backup", BACKUP_OBJECT)
        provider.unwrap_archive_data_key("backup", BACKUP_OBJECT, backed_up.ciphertext)
        provider.create_community_key(FOUND)
        provider.ensure_signing_key(f"audit-checkpoints-{FOUND}")
        state.keys["archive-audit"].deletion_allowed = True  # an operator allowed it since
        provider.ensure_archive_key("audit")
        state.keys["archive-backup"].deletion_allowed = True
        provider.ensure_archive_key("backup")


def _keys_found_with_deletion_allowed(state: VaultState) -> None:
    """Keys an operator made with the right settings but deletion allowed: the provider turns deletion off."""
    state.keys[f"community-{FOUND}"] = TransitKey(versions={1: new_key_material("aes256-gcm96")}, deletion_allowed=True)
    state.keys[f"signing-audit-checkpoints-{FOUND}"] = TransitKey(
        versions={1: new_key_material("ed25519")}, type="ed25519", derived=False, deletion_allowed=True
    )
