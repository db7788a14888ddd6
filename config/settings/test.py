"""Settings for the test suite: the real local PostgreSQL, Redis and RabbitMQ."""

from __future__ import annotations

import tempfile
from pathlib import Path

from config.env import env_int, env_str
from config.settings.base import *  # noqa: F403
from config.settings.base import STORAGES, cache_settings

SECRET_KEY = "test-only-secret-key-never-used-outside-the-test-suite-0123456789"  # noqa: S105 # nosec B105
DEBUG = False
ALLOWED_HOSTS = [".localhost", "localhost", "127.0.0.1", "testserver"]

# The suite connects as the tables' owner (it creates schemas); migrations grant the service's role its
# privileges, and the tests that attack the audit log act as that role (SET ROLE).
DATABASE_SERVICE_ROLE = env_str("DATABASE_SERVICE_ROLE", "gateway_service")

# A separate Redis database, flushed between tests.
REDIS_URL = env_str("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CACHE_URL = env_str("TEST_CACHE_URL", "redis://127.0.0.1:6379/14")
CACHES = cache_settings(CACHE_URL)

# Each test run signs with keys of its own, and keeps community keys of its own.
JWT_SIGNING_KEYS_DIR = Path(tempfile.mkdtemp(prefix="cgw-test-jwt-keys-"))
AUDIT_ARCHIVE_DIR = Path(tempfile.mkdtemp(prefix="cgw-test-audit-archives-"))
# Each run witnesses into a directory of its own, emptied before every test that uses the database.
AUDIT_WITNESS = "local"
AUDIT_WITNESS_DIR = Path(tempfile.mkdtemp(prefix="cgw-test-audit-witness-"))
BACKUP_DIR = Path(tempfile.mkdtemp(prefix="cgw-test-backups-"))
BACKUP_SPOOL_DIR = Path(tempfile.mkdtemp(prefix="cgw-test-backup-spool-"))
BACKUP_ARCHIVE_DIR = Path(tempfile.mkdtemp(prefix="cgw-test-backup-archive-"))
LOCAL_KEY_FILE = Path(env_str("TEST_LOCAL_KEY_FILE", str(Path(tempfile.gettempdir()) / "cgw-test-local-keys.json")))

# Argon2 still, with a cost a test suite can afford.
PASSWORD_HASHERS = ["tests.hashers.FastArgon2PasswordHasher"]

ROTATION_SETTLE_SECONDS = 0
# Every commit asks for its events to be chained (production asks at most once per 50 ms per process).
AUDIT_CHAIN_SIGNAL_MS = env_int("AUDIT_CHAIN_SIGNAL_MS", default=0)
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
