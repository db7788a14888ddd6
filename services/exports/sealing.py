"""What an export's sealed file is bound to (the sealing itself is :mod:`vault.sealing`)."""

from __future__ import annotations

from vault.crypto import associated_data


def file_aad(*, community: str, export_id: str, key_version: int) -> bytes:
    """What every chunk of an export's file is bound to (the chunk's index and last flag are added)."""
    return associated_data(
        community=community, model="exports.DeidentifiedExport", field="file", row=export_id, key_version=key_version
    )
