"""The one error of the backup tools: what failed, in words an operator can act on (no secrets)."""

from __future__ import annotations


class BackupError(Exception):
    """A backup, an archive step or a restore could not be done."""
