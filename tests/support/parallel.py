"""Each pytest-xdist worker gets stores of its own, before Django reads its settings.

tests/conftest.py's ``pytest_xdist_newgateway`` sets these variables in each worker
process as soon as it exists, before pytest (and so Django's settings) starts there.
Outside xdist, and in xdist's first worker, nothing changes. Worker ``gwN`` (N >= 1) gets:

- the Redis databases two below its predecessor's (``TEST_REDIS_URL`` and
  ``TEST_CACHE_URL``; the defaults 15 and 14 give ``gw1`` 13 and 12), since every
  database test flushes its Redis database;
- a local key file, and a state directory (export and archive directories), of its own.

The test database is suffixed by pytest-django itself (``test_<name>_gwN``); servers
started by tests take free ports, and temporary directories come from ``tempfile``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import urlsplit

# The defaults of config/settings/test.py: kept in step by tests/test_parallel.py.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_CACHE_URL = "redis://127.0.0.1:6379/14"
DEFAULT_KEY_FILE = str(Path(tempfile.gettempdir()) / "cgw-test-local-keys.json")


def worker_index(worker: str) -> int:
    """The number of an xdist worker id (``gw3`` is 3)."""
    return int(worker.removeprefix("gw"))


def redis_url_for(url: str, index: int) -> str:
    """``url`` with its database number moved ``2 * index`` down (each worker uses two: state and cache)."""
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or "0") - 2 * index
    if database < 0:
        msg = f"not enough Redis databases below {url} for worker {index}: run fewer workers or raise the number"
        raise RuntimeError(msg)
    return parts._replace(path=f"/{database}").geturl()


def worker_environment(environ: dict[str, str], index: int) -> dict[str, str]:
    """The variables a worker sets so that its stores are its own (nothing for worker 0)."""
    if index == 0:
        return {}
    key_file = Path(environ.get("TEST_LOCAL_KEY_FILE", DEFAULT_KEY_FILE))
    base_state = environ.get("LOCAL_STATE_DIR", str(Path(tempfile.gettempdir()) / "cgw-test-state"))
    return {
        "TEST_REDIS_URL": redis_url_for(environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL), index),
        "TEST_CACHE_URL": redis_url_for(environ.get("TEST_CACHE_URL", DEFAULT_CACHE_URL), index),
        "TEST_LOCAL_KEY_FILE": str(key_file.with_name(f"{key_file.stem}-gw{index}{key_file.suffix}")),
        "LOCAL_STATE_DIR": f"{base_state.rstrip('/')}-gw{index}",
    }
