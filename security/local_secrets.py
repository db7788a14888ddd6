"""Secrets a developer machine generates for itself, once, outside the repository.

Used by development settings (Django's secret key) and the demo seed (the demo
password). Production never calls this: its settings require real secrets.
"""

from __future__ import annotations

import secrets
from pathlib import Path


def read_or_create_secret(path: Path, *, nbytes: int) -> str:
    """Return the secret stored at ``path``, creating it (mode 0600, folder 0700) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(nbytes), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()
