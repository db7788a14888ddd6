"""``configure_vault``: one-time Transit mount settings (``disable_upsert``), then a readiness check."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError

from core.commands import ApplicationCommand
from vault.providers import VaultTransitProvider


class Command(ApplicationCommand):
    """Run once per Vault (and after restoring one): an encrypt call must never create a key."""

    help = "Set disable_upsert on the Transit mount and check that Vault is ready."

    def run(self, **options: Any) -> None:
        """Configure and check."""
        if settings.KEY_PROVIDER != "vault":
            raise CommandError("KEY_PROVIDER is not vault: nothing to configure")
        provider = VaultTransitProvider()
        provider.configure_mount()
        provider.check_ready()
        self.stdout.write(f"{settings.VAULT_TRANSIT_MOUNT}: disable_upsert on; Vault ready")
