"""The test settings for a server the suite starts in a process of its own (gunicorn, as ``scripts/serve.sh`` runs it).

The test settings make a new JWT key directory per process; a served process
must verify the tokens the test process signs, so it takes the test process's
directory from ``TEST_JWT_SIGNING_KEYS_DIR``. Everything else is the test
settings as they are (the test database comes in through ``DATABASE_URL``).
"""

from __future__ import annotations

from pathlib import Path

from config.env import env_str
from config.settings.test import *  # noqa: F403

JWT_SIGNING_KEYS_DIR = Path(env_str("TEST_JWT_SIGNING_KEYS_DIR", ""))
