"""Settings shared by every environment.

Every value that differs between environments is read from the environment
here, once. ``development``, ``test`` and ``production`` import this module and
adjust it; ``production`` refuses to start when something is missing or unsafe.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from celery.schedules import crontab

from config.celery import task_queues
from config.database_roles import connection_url, service_role_of
from config.env import env_bool, env_int, env_list, env_str
from core.limits import BODY_MAX_BYTES, QUERY_PARAMETERS_MAX

# Lets the typed generics of django-stubs (ModelAdmin[Model], QuerySet[Model]) run.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# Files the service generates for itself on a developer machine (secret key,
# JWT signing keys, demo credentials) live outside the repository.
LOCAL_STATE_DIR = Path(
    env_str(
        "LOCAL_STATE_DIR",
        str(Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "compliance-gateway"),
    )
)

DEBUG = env_bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS", [])
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [".localhost", "localhost", "127.0.0.1"])

# Hosts that serve the platform (public schema): admin, health, docs. Every
# other host must be a community's domain.
PUBLIC_HOSTS = env_list("PUBLIC_HOSTS", ["localhost", "127.0.0.1"])

DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/compliance_gateway")
# Two database roles: the tables' owner runs migrations and the commands that create or drop schemas
# (manage.py sets DATABASE_ROLE=owner for them, see config/database_roles.py); the service runs as a role
# that may only append to the audit log. Without DATABASE_OWNER_URL one role does both (development only).
DATABASE_OWNER_URL = env_str("DATABASE_OWNER_URL", "")
DATABASE_ROLE = env_str("DATABASE_ROLE", "service")
# The role migrations grant the service's privileges to (default: DATABASE_URL's user, when the owner differs).
DATABASE_SERVICE_ROLE = env_str("DATABASE_SERVICE_ROLE", service_role_of(DATABASE_URL, DATABASE_OWNER_URL))
# Security state (revocations, lockouts) and the cache live apart: clearing or
# evicting the cache must never un-revoke a token. Give REDIS_URL `noeviction`.
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
# REDIS_URL names one node of a Redis Cluster (database 0): the client finds the others (core/redis.py).
REDIS_CLUSTER = env_bool("REDIS_CLUSTER", default=False)
CACHE_URL = env_str("CACHE_URL", "redis://127.0.0.1:6379/1")
RABBITMQ_URL = env_str("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
AWS_S3_BUCKET = env_str("AWS_S3_BUCKET")

SHARED_APPS = [
    "django_tenants",
    "tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "gateway",
    "security",
    "security.audit",
    "operations",
]
TENANT_APPS = [
    "policy",
    "vault",
    "security.audit",
    "security.breakglass",
    "services.studies",
    "services.participants",
    "services.consents",
    "services.observations",
    "services.exports",
    "services.accounting",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Community"
# `migrate` skips communities at the latest state and migrates the rest in parallel (tenants/migrating.py).
GET_EXECUTOR_FUNCTION = "tenants.migrating.get_executor"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
ROOT_URLCONF = "config.urls_tenant"
AUTH_USER_MODEL = "security.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

MIDDLEWARE = [
    # First, before anything reads the host: the signed host Kong forwarded becomes the Host (it never answers).
    "gateway.proxy.ProxyTrustMiddleware",
    # Outermost of those that answer: every response, refusals included, gets the security headers and a request id.
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "gateway.middleware.RequestIdMiddleware",
    # Every 405, a plain Django view's too, is a problem document with Allow.
    "gateway.middleware.MethodNotAllowedMiddleware",
    "gateway.metrics.RequestMetricsMiddleware",
    # Refusals made before the policy (or without an event inside it) are recorded on the way out, bounded.
    "gateway.refusals.RefusalAuditMiddleware",
    "gateway.proxy.GatewayRequiredMiddleware",
    "gateway.middleware.ApiResponseHeadersMiddleware",
    "gateway.middleware.BodyLimitMiddleware",
    "gateway.ratelimit.ClientRateLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "tenants.middleware.CommunityMiddleware",
    # Inside the community: each request is one transaction ending with its audit event.
    "security.audit.middleware.AuditMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"


def database_settings(url: str) -> dict[str, Any]:
    """Build the default database entry; django-tenants needs its own backend."""
    # 0 under gunicorn's gevent workers (config/gunicorn.py): a greenlet's connection goes back to the pool.
    conn_max_age = env_int("DATABASE_CONN_MAX_AGE", default=60)
    database: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=conn_max_age, conn_health_checks=True))
    # django-tenants' backend with the community's search_path set per transaction (SET LOCAL), never left
    # on a connection: safe behind a pooler in transaction mode (tenants/backend/base.py).
    database["ENGINE"] = "tenants.backend"
    # gunicorn's workers (config/gunicorn.py) keep their connections in a pool of this many per process
    # (Django's psycopg pool): a request takes one and gives it back, still open, when it finishes. The
    # pool checks a connection as it hands it out (CONN_HEALTH_CHECKS). 0: no pool.
    pool_size = env_int("DATABASE_POOL_MAX_SIZE", default=0)
    options: dict[str, Any] = database.setdefault("OPTIONS", {})
    if pool_size > 0:
        database["CONN_MAX_AGE"] = 0  # Django's pool refuses persistent connections
        options["pool"] = {"min_size": 0, "max_size": pool_size, "timeout": 10}
    # Behind PgBouncer in transaction mode a client's next statement may reach another server connection: no
    # cursor held across statements (Django's iterator() cursors). Prepared statements are off already (Django
    # leaves psycopg's prepare_threshold unset); PgBouncer before 1.21 could not carry them across either.
    if env_bool("DATABASE_TRANSACTION_POOLING", default=False):
        database["DISABLE_SERVER_SIDE_CURSORS"] = True
    return database


DATABASES = {"default": database_settings(connection_url(DATABASE_ROLE, DATABASE_URL, DATABASE_OWNER_URL))}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)


def cache_settings(url: str) -> dict[str, Any]:
    """Redis cache whose keys carry the current schema (django-tenants' key function)."""
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_FUNCTION": "django_tenants.cache.make_key",
            "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        }
    }


CACHES = cache_settings(CACHE_URL)
# Seconds to wait for Redis before a request fails closed.
REDIS_SOCKET_TIMEOUT = 0.5
# How long an answer every request needs (a host's community, a user's break-glass grant) may be
# kept in Redis; any change invalidates at once, this only bounds an invalidation Redis could not take.
GENERATION_CACHE_SECONDS = env_int("GENERATION_CACHE_SECONDS", default=30)

AUTHENTICATION_BACKENDS = ["security.identity.backends.ThrottledEmailBackend"]
# The Django admin on the platform host; production turns it off unless ADMIN_ENABLED=true.
ADMIN_ENABLED = env_bool("ADMIN_ENABLED", default=True)

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT: Path | None = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Request bodies larger than this are refused before parsing (gateway.middleware.BodyLimitMiddleware);
# Kong's request-size-limiting is generated from it (gateway.kong).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=BODY_MAX_BYTES)
# Query-string parameters (and form fields): more is 400 too_many_parameters (gateway.problems).
DATA_UPLOAD_MAX_NUMBER_FIELDS = QUERY_PARAMETERS_MAX

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["security.identity.authentication.AccessTokenAuthentication"],
    # Every view asks the policy; public routes opt out explicitly and are listed in policy/routes.py.
    "DEFAULT_PERMISSION_CLASSES": ["policy.permissions.PolicyPermission"],
    # JSON only; nesting too deep for the parser is a 400 like any other malformed body (core/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JsonBodyParser"],
    # `?format=` is ours (e.g. the CSV form of an accounting), not a renderer switch.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "gateway.openapi.GatewaySchema",
    # No OPTIONS metadata: the OpenAPI schema documents the API; OPTIONS answers 405.
    "DEFAULT_METADATA_CLASS": None,
    "EXCEPTION_HANDLER": "gateway.problems.problem_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Compliance gateway API",
    "DESCRIPTION": "Community-scoped research APIs behind JWT authentication, policy and audit.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The lifecycle policy and the versions' dates (gateway/openapi.py), after drf-spectacular's enum naming.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "gateway.openapi.describe_versions"],
    # Several models name a field "status" with choices of their own: one schema enum each.
    "ENUM_NAME_OVERRIDES": {
        "StudyStatusEnum": "services.studies.models.StudyStatus",
        "ExportStatusEnum": "core.exports.ExportStatus",  # audit and de-identified exports alike
    },
}

# Tokens. Access tokens are EdDSA-signed JWTs; refresh tokens are opaque and
# stored hashed. JWT_LEEWAY_SECONDS may not exceed 60 (checked at start-up).
JWT_ISSUER = env_str("JWT_ISSUER", "urn:compliance-gateway:dev")
JWT_AUDIENCE = env_str("JWT_AUDIENCE", "urn:compliance-gateway:api")
JWT_SIGNING_KEYS_DIR = Path(env_str("JWT_SIGNING_KEYS_DIR", str(LOCAL_STATE_DIR / "jwt-keys")))
JWT_LEEWAY_SECONDS = env_int("JWT_LEEWAY_SECONDS", default=30)
ACCESS_TOKEN_TTL_SECONDS = env_int("ACCESS_TOKEN_TTL_SECONDS", default=3600)
REFRESH_TOKEN_TTL_SECONDS = env_int("REFRESH_TOKEN_TTL_SECONDS", default=7 * 24 * 3600)
# Automatic logoff (HIPAA 164.312(a)(2)(iii)). A session (one sign-in's family of refresh tokens)
# ends when it is not refreshed for SESSION_IDLE_TIMEOUT_SECONDS, and SESSION_MAX_AGE_SECONDS after
# the sign-in whatever happens; its access tokens stop at that absolute end too. Idleness is seen at
# refresh, and an active client refreshes once per access token, so the idle timeout must exceed
# ACCESS_TOKEN_TTL_SECONDS: by default a client has 30 minutes after its token runs out to come back.
SESSION_IDLE_TIMEOUT_SECONDS = env_int("SESSION_IDLE_TIMEOUT_SECONDS", default=ACCESS_TOKEN_TTL_SECONDS + 1800)
SESSION_MAX_AGE_SECONDS = env_int("SESSION_MAX_AGE_SECONDS", default=12 * 3600)
# Revocation is asked of Redis first; when Redis holds no answer for a session, the database's
# AuthSession.revoked_at decides. A "still live" answer is then kept this long (so a revocation
# made in the database alone is honoured within it); a "revoked" one as long as a token could live.
REVOCATION_LIVE_CACHE_SECONDS = env_int("REVOCATION_LIVE_CACHE_SECONDS", default=5)

# Failed logins: after this many failures inside the window, the account (or
# the client address) is locked for LOGIN_LOCKOUT_SECONDS.
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", default=900)
LOGIN_MAX_FAILURES_PER_ACCOUNT = env_int("LOGIN_MAX_FAILURES_PER_ACCOUNT", default=5)
LOGIN_MAX_FAILURES_PER_IP = env_int("LOGIN_MAX_FAILURES_PER_IP", default=20)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", default=900)

MFA_TOTP_ISSUER = env_str("MFA_TOTP_ISSUER", "Compliance Gateway")
MFA_RECOVERY_CODE_COUNT = 10
# Enrolling a second factor needs a sign-in at most this old: a stolen token alone cannot add one.
MFA_ENROLLMENT_MAX_AUTH_AGE_SECONDS = env_int("MFA_ENROLLMENT_MAX_AUTH_AGE_SECONDS", default=900)

# Celery on RabbitMQ: quorum queues, each with a dead-letter queue behind a dead-letter exchange.
CELERY_BROKER_URL = RABBITMQ_URL
TASK_QUEUE_NAMES = ("default", "keys", "audit")
# Names on the broker, not module paths: deployed queues are bound to them, so they stay as they are.
TASK_EXCHANGE = "gateway.tasks"
DEAD_LETTER_EXCHANGE = "gateway.dead-letter"


CELERY_TASK_QUEUES = task_queues(TASK_QUEUE_NAMES, exchange=TASK_EXCHANGE, dead_letter_exchange=DEAD_LETTER_EXCHANGE)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_DEFAULT_EXCHANGE = TASK_EXCHANGE
CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
CELERY_TASK_DEFAULT_ROUTING_KEY = "default"
CELERY_TASK_ROUTES = {
    "vault.tasks.*": {"queue": "keys", "routing_key": "keys"},
    # Chaining has a queue of its own: a long export or re-encryption never delays it.
    "security.audit.tasks.chain_schema": {"queue": "audit", "routing_key": "audit"},
}
CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
# Workers keep the LOGGING below (config/celery.py re-applies it): Celery's own root handlers would drop
# WithholdExceptionMessageFilter, and task failures would log exception messages that may carry PHI.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
# A failed task is rejected, not acknowledged: it lands in its dead-letter queue.
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = False
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Workers (issue 17): runaway tasks are stopped (soft limit raises in the task, the hard limit kills the
# child, and core.tasks.GatewayTask's request rejects the message into its dead-letter queue at once:
# Celery alone would requeue it up to the delivery limit); the limits travel in the message, so every role
# must get the same ones;
# children are recycled so a leak cannot grow without bound; task events feed monitoring.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_WORKER_MAX_TASKS_PER_CHILD = env_int("CELERY_WORKER_MAX_TASKS_PER_CHILD", default=500)
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env_int("CELERY_WORKER_MAX_MEMORY_PER_CHILD", default=300_000)  # KiB
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
# Per task class: the two that walk a whole community (re-encryption, resumable in batches; an export build,
# which a redelivery starts again while it is still pending) and the base backup, which streams the whole
# cluster, get an hour; every other task keeps the limits above.
LONG_TASK_TIME_LIMIT = env_int("CELERY_LONG_TASK_TIME_LIMIT", default=3600)
LONG_TASKS = (
    "vault.tasks.reencrypt_community_task",
    "services.exports.tasks.deidentified_export",
    "operations.tasks.backup_base",
)
CELERY_TASK_ANNOTATIONS = {
    name: {"time_limit": LONG_TASK_TIME_LIMIT, "soft_time_limit": LONG_TASK_TIME_LIMIT - 60} for name in LONG_TASKS
}

# Policy: the embedded Rego engine (development, tests) or an OPA sidecar (production).
POLICY_ENGINE = env_str("POLICY_ENGINE", "embedded")
POLICY_DIR = Path(env_str("POLICY_DIR", str(BASE_DIR / "policy" / "rego")))
# The embedded engine answers an input it decided before from memory, the request id aside (exact: the
# bundle is fixed; policy.engine.memo_key). Entries per process; 0 evaluates every decision.
POLICY_DECISION_MEMO_SIZE = env_int("POLICY_DECISION_MEMO_SIZE", default=4096)
# OPA's base URL, a path prefix included (a proxy in front of OPA): /v1/data/... and /health go below it.
OPA_URL = env_str("OPA_URL", "http://127.0.0.1:8181")
OPA_TIMEOUT_SECONDS = float(env_str("OPA_TIMEOUT_SECONDS", "0.25"))
# The bearer token OPA's API requires (deploy/opa: --authentication=token); never logged.
OPA_TOKEN = env_str("OPA_TOKEN", "")
# A CA bundle (PEM file) to verify an https OPA with; empty means the bundle requests ships (certifi's),
# not the system's trust store (the engine reads nothing from the environment, REQUESTS_CA_BUNDLE included).
OPA_CACERT = env_str("OPA_CACERT", "")
# The policy guarding OPA's own API (loaded beside the bundle); policy_test runs its tests too.
OPA_AUTHZ_POLICY_DIR = BASE_DIR / "deploy" / "opa"
# Purposes of use a client may state in X-Purpose-Of-Use; consents are given per purpose.
POLICY_PURPOSES = ["research_use", "contact", "data_sharing", "genomic", "operations", "emergency"]
POLICY_DEFAULT_PURPOSE = "research_use"

# Keys: a local provider (development, tests) or Vault Transit (production).
KEY_PROVIDER = env_str("KEY_PROVIDER", "local")
LOCAL_KEY_FILE = Path(env_str("LOCAL_KEY_FILE", str(LOCAL_STATE_DIR / "local-keys.json")))
VAULT_ADDR = env_str("VAULT_ADDR", "http://127.0.0.1:8200")
VAULT_TOKEN = env_str("VAULT_TOKEN")
VAULT_ROLE_ID = env_str("VAULT_ROLE_ID")
VAULT_SECRET_ID = env_str("VAULT_SECRET_ID")
VAULT_CACERT = env_str("VAULT_CACERT")
VAULT_TIMEOUT_SECONDS = float(env_str("VAULT_TIMEOUT_SECONDS", "2"))
VAULT_TRANSIT_MOUNT = env_str("VAULT_TRANSIT_MOUNT", "transit")
VAULT_KEY_PREFIX = env_str("VAULT_KEY_PREFIX", "community-")
# Unwrapped data keys stay in process memory this long, for this many uses, at most this many keys.
DATA_KEY_CACHE_MAX_AGE_SECONDS = env_int("DATA_KEY_CACHE_MAX_AGE_SECONDS", default=300)
DATA_KEY_CACHE_MAX_USES = env_int("DATA_KEY_CACHE_MAX_USES", default=1_000_000)
DATA_KEY_CACHE_MAX_ENTRIES = env_int("DATA_KEY_CACHE_MAX_ENTRIES", default=1000)
# A rotation waits this long before its final sweep, so that writes begun under the old key commit first.
ROTATION_SETTLE_SECONDS = env_int("ROTATION_SETTLE_SECONDS", default=5)
# An offboarded community's schema is dropped this many days after its keys were destroyed.
OFFBOARD_GRACE_DAYS = env_int("OFFBOARD_GRACE_DAYS", default=30)

# Audit log: checkpoints, exports, retention, break-glass.
AUDIT_SIGNING_KEY_NAME = env_str("AUDIT_SIGNING_KEY_NAME", "audit-checkpoints")
AUDIT_CHECKPOINT_EVERY = env_int("AUDIT_CHECKPOINT_EVERY", default=1000)  # events
AUDIT_CHECKPOINT_SECONDS = env_int("AUDIT_CHECKPOINT_SECONDS", default=300)
# Staged audit events are chained by a worker soon after their commit; see security/audit/sequencer.py.
AUDIT_CHAIN_SECONDS = env_int("AUDIT_CHAIN_SECONDS", default=2)  # the sweep for events nobody asked to chain
AUDIT_CHAIN_SIGNAL_MS = env_int("AUDIT_CHAIN_SIGNAL_MS", default=50)  # a process asks once per this, per community
AUDIT_CHAIN_FLAG_SECONDS = 60  # a lost chain task stops holding back new ones after this long
# A chain task keeps chaining while requests keep staging, then hands over to a new task after this long.
AUDIT_CHAIN_TASK_SECONDS = env_int("AUDIT_CHAIN_TASK_SECONDS", default=5)
AUDIT_EXPORT_DIR = Path(env_str("AUDIT_EXPORT_DIR", str(LOCAL_STATE_DIR / "audit-exports")))
# De-identified (Safe Harbor) study exports, sealed with the community's key: "local" files or "s3" objects.
DEIDENTIFIED_EXPORT_STORAGE = env_str("DEIDENTIFIED_EXPORT_STORAGE", "s3" if AWS_S3_BUCKET else "local")
DEIDENTIFIED_EXPORT_DIR = Path(env_str("DEIDENTIFIED_EXPORT_DIR", str(LOCAL_STATE_DIR / "deidentified-exports")))
DEIDENTIFIED_EXPORT_S3_PREFIX = env_str("DEIDENTIFIED_EXPORT_S3_PREFIX", "deidentified-exports/")
DEIDENTIFIED_EXPORT_CHUNK_BYTES = env_int("DEIDENTIFIED_EXPORT_CHUNK_BYTES", default=64 * 1024)
# HIPAA keeps documentation six years (45 CFR 164.316(b)(2)); this may only be raised.
AUDIT_MIN_RETENTION_DAYS = 6 * 366
AUDIT_RETENTION_DAYS = max(env_int("AUDIT_RETENTION_DAYS", default=AUDIT_MIN_RETENTION_DAYS), AUDIT_MIN_RETENTION_DAYS)
AUDIT_PAGE_SIZE = 100
# Offboarding archives a community's audit trail, sealed under the key provider's archive key (never a
# community's key), in "local" files or "s3" objects under Object Lock, kept AUDIT_RETENTION_DAYS.
AUDIT_ARCHIVE_KEY_NAME = env_str("AUDIT_ARCHIVE_KEY_NAME", "audit")
AUDIT_ARCHIVE_STORAGE = env_str("AUDIT_ARCHIVE_STORAGE", "s3" if AWS_S3_BUCKET else "local")
AUDIT_ARCHIVE_DIR = Path(env_str("AUDIT_ARCHIVE_DIR", str(LOCAL_STATE_DIR / "audit-archives")))
AUDIT_ARCHIVE_S3_PREFIX = env_str("AUDIT_ARCHIVE_S3_PREFIX", "audit-archives/")
AUDIT_ARCHIVE_OBJECT_LOCK_MODE = env_str("AUDIT_ARCHIVE_OBJECT_LOCK_MODE", "COMPLIANCE")
# The witness: every signed checkpoint and purge statement is also published where the database cannot
# rewrite it. "s3": an Object Lock (compliance mode) bucket; "local": append-only files (development).
AUDIT_WITNESS = env_str("AUDIT_WITNESS", "s3" if AWS_S3_BUCKET else "local")
AUDIT_WITNESS_DIR = Path(env_str("AUDIT_WITNESS_DIR", str(LOCAL_STATE_DIR / "audit-witness")))
AUDIT_WITNESS_S3_BUCKET = env_str("AUDIT_WITNESS_S3_BUCKET", AWS_S3_BUCKET)  # needs Object Lock enabled
AUDIT_WITNESS_S3_PREFIX = env_str("AUDIT_WITNESS_S3_PREFIX", "audit-witness/")
DISCLOSURE_LOOKBACK_DAYS = 6 * 366
# Backups (docs/operations/backups.md): base backups and WAL from a replication slot, sealed under the key
# provider's backup key (an archive key: no community owns it), kept in BACKUP_DIR.
BACKUP_DIR = Path(env_str("BACKUP_DIR", str(LOCAL_STATE_DIR / "backups")))
BACKUP_SPOOL_DIR = Path(env_str("BACKUP_SPOOL_DIR", str(LOCAL_STATE_DIR / "backup-spool")))  # WAL before sealing
BACKUP_SCRATCH_DIR = env_str("BACKUP_SCRATCH_DIR", "")  # where restore tests unpack (default: the temp dir)
BACKUP_DATABASE_URL = env_str("BACKUP_DATABASE_URL", "")  # a REPLICATION role; default: the service's database
BACKUP_PG_BINDIR = env_str("BACKUP_PG_BINDIR", "")  # default: pg_config --bindir
BACKUP_SLOT = env_str("BACKUP_SLOT", "")  # default: backup_<database>
BACKUP_KEY_NAME = env_str("BACKUP_KEY_NAME", "backup")
BACKUP_SERVER_USER = env_str("BACKUP_SERVER_USER", "postgres")  # runs a scratch cluster when this process is root
BACKUP_RETENTION_DAYS = env_int("BACKUP_RETENTION_DAYS", default=30)  # daily base backups, and WAL since the oldest
# The first base backup of each month is copied here (another volume or bucket) and kept much longer.
BACKUP_ARCHIVE_DIR = Path(env_str("BACKUP_ARCHIVE_DIR", str(LOCAL_STATE_DIR / "backup-archive")))
BACKUP_ARCHIVE_RETENTION_DAYS = env_int("BACKUP_ARCHIVE_RETENTION_DAYS", default=366)
# The off-site copy (docs/operations/backups.md): the store mirrored to S3 after every run, when a bucket is set.
BACKUP_S3_BUCKET = env_str("BACKUP_S3_BUCKET", AWS_S3_BUCKET)
BACKUP_S3_PREFIX = env_str("BACKUP_S3_PREFIX", "backups/")
BACKUP_WAL_SECONDS = env_int("BACKUP_WAL_SECONDS", default=300)  # the WAL archive's interval: the RPO
BACKUP_DAILY_HOUR = env_int("BACKUP_DAILY_HOUR", default=2)  # UTC
BACKUP_DAILY_MINUTE = env_int("BACKUP_DAILY_MINUTE", default=15)
BACKUP_REPORT_DIR = Path(env_str("BACKUP_REPORT_DIR", str(LOCAL_STATE_DIR / "restore-test-reports")))
# The titles of the persons or offices responsible for accountings of disclosures (45 CFR 164.528(d)(3)).
ACCOUNTING_RESPONSIBLE = env_str("ACCOUNTING_RESPONSIBLE", "Privacy Officer")
BREAK_GLASS_DEFAULT_MINUTES = env_int("BREAK_GLASS_DEFAULT_MINUTES", default=60)
BREAK_GLASS_MAX_MINUTES = env_int("BREAK_GLASS_MAX_MINUTES", default=240)
# Compliance officers' notices are owed until sent (the grant row is the outbox): every this many seconds a
# periodic task queues again each notice still owed for a grant opened more than the delay ago.
BREAK_GLASS_NOTIFY_SWEEP_SECONDS = env_int("BREAK_GLASS_NOTIFY_SWEEP_SECONDS", default=60)
BREAK_GLASS_NOTIFY_DELAY_SECONDS = env_int("BREAK_GLASS_NOTIFY_DELAY_SECONDS", default=120)
# Break-glass alarms (security/breakglass/alarms.py): a grant ended this long ago and not reviewed is overdue; one
# not notified this long after it opened (mail failing, or no compliance officer to tell) is unnotified. A
# periodic task logs and mails each alarm (the mail once per grant and alarm); `manage.py breakglass_alarms`
# prints them and exits 1 while there are any.
BREAK_GLASS_REVIEW_DUE_HOURS = env_int("BREAK_GLASS_REVIEW_DUE_HOURS", default=72)
BREAK_GLASS_NOTIFY_DUE_MINUTES = env_int("BREAK_GLASS_NOTIFY_DUE_MINUTES", default=15)
BREAK_GLASS_ALARM_SWEEP_SECONDS = env_int("BREAK_GLASS_ALARM_SWEEP_SECONDS", default=300)
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", default=25)
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "compliance-gateway@localhost")
CELERY_BEAT_SCHEDULE = {
    "audit-checkpoints": {"task": "security.audit.tasks.checkpoint_all", "schedule": float(AUDIT_CHECKPOINT_SECONDS)},
    "audit-chain": {"task": "security.audit.tasks.chain_all", "schedule": float(AUDIT_CHAIN_SECONDS)},
    "break-glass-notify": {
        "task": "security.breakglass.tasks.notify_sweep",
        "schedule": float(BREAK_GLASS_NOTIFY_SWEEP_SECONDS),
    },
    "break-glass-alarms": {
        "task": "security.breakglass.tasks.alarm_sweep",
        "schedule": float(BREAK_GLASS_ALARM_SWEEP_SECONDS),
    },
    # docs/operations/backups.md: the WAL every few minutes (the recovery point), a base backup every day.
    "backup-wal": {"task": "operations.tasks.backup_wal", "schedule": float(BACKUP_WAL_SECONDS)},
    "backup-daily": {
        "task": "operations.tasks.backup_base",
        "schedule": crontab(hour=BACKUP_DAILY_HOUR, minute=BACKUP_DAILY_MINUTE),
    },
}

# Only development settings may create the demo communities and users.
DEMO_SEED_ALLOWED = False

# Readiness probes give each dependency this long before calling it down.
HEALTH_CHECK_TIMEOUT_SECONDS = 2.0
# /health/ready marks a resource (memory, disk, database connections) "warn" from this share of its limit on;
# a warning never makes readiness fail (gateway/resources.py).
READINESS_RESOURCE_WARN_RATIO = float(env_str("READINESS_RESOURCE_WARN_RATIO", "0.9"))
# The resident set above which gunicorn recycles a worker, as config/gunicorn.py reads it (that file is read
# before Django and imports nothing of it); /health/ready reports it beside the process's own.
GUNICORN_WORKER_MAX_RSS_MB = env_int("GUNICORN_WORKER_MAX_RSS_MB", default=512)

# Bearer token a Prometheus scraper presents at the platform host's /metrics; empty refuses every scrape.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
# The release this process runs (the image sets it at build time); /health/live and /health/ready report it.
SERVICE_RELEASE = env_str("SERVICE_RELEASE", "dev")

# Rate limits held by the service itself (Kong has its own, which fail open without Redis).
RATE_LIMIT_PER_IP = env_int("RATE_LIMIT_PER_IP", default=100)  # per minute
RATE_LIMIT_IP_BURST = env_int("RATE_LIMIT_IP_BURST", default=200)
RATE_LIMIT_PER_USER = env_int("RATE_LIMIT_PER_USER", default=1000)  # per hour
RATE_LIMIT_USER_BURST = env_int("RATE_LIMIT_USER_BURST", default=100)
# Refusals before the policy are audit events: the first per client, host and code in each window, the rest
# counted; and at most this many refusal events per window for everyone (security/audit/refusals.py).
AUDIT_REFUSAL_WINDOW_SECONDS = env_int("AUDIT_REFUSAL_WINDOW_SECONDS", default=60)
AUDIT_REFUSAL_MAX_PER_WINDOW = env_int("AUDIT_REFUSAL_MAX_PER_WINDOW", default=1000)

# Proxy trust: forwarded headers only from these addresses (CIDRs), signed with the shared secret.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
PROXY_SHARED_SECRET = env_str("PROXY_SHARED_SECRET")
PROXY_SIGNATURE_MAX_AGE_SECONDS = env_int("PROXY_SIGNATURE_MAX_AGE_SECONDS", default=30)
REQUIRE_GATEWAY = env_bool("REQUIRE_GATEWAY", default=False)

# Kong (deploy/kong/kong.yml is generated from these and the URLconf by `manage.py kong_config`).
KONG_UPSTREAM_URL = env_str("KONG_UPSTREAM_URL", "https://gateway.internal:8443")
KONG_COMMUNITY_DOMAIN_SUFFIX = env_str("KONG_COMMUNITY_DOMAIN_SUFFIX", "research.example.org")
KONG_ADMIN_ALLOW = env_list("KONG_ADMIN_ALLOW", ["127.0.0.1/32"])
# Kong's admin API, which the blue/green commands load configurations into (a loopback double locally).
KONG_ADMIN_URL = env_str("KONG_ADMIN_URL", "http://127.0.0.1:8001")
KONG_REDIS_HOST = env_str("KONG_REDIS_HOST", "kong-redis.internal")
# The name Kong checks the Redis certificate against (and sends as SNI): a host name, not an address.
KONG_REDIS_SERVER_NAME = env_str("KONG_REDIS_SERVER_NAME", KONG_REDIS_HOST)
KONG_CLIENT_CERTIFICATE_ID = "5c1b3f0e-8a2d-4e8b-9a57-6f0c2d9e1a40"

# API versions: {"v1": {"deprecated": datetime | None, "sunset": datetime | None, "successor": "/api/v2/"}}.
API_VERSIONS: dict[str, dict[str, Any]] = {"v1": {"deprecated": None, "sunset": None, "successor": None}}

# A strict policy: nothing inline, nothing from elsewhere (the docs page included).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
    }
}

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "no-referrer"
# The health probes answer over plain HTTP where production redirects everything else to HTTPS: an
# orchestrator probes the pod directly (Kubernetes counts a 301 as a pass, so readiness would never fail;
# the image's HEALTHCHECK, entrypoint probe, would never pass). They carry no PHI and no credential.
SECURE_REDIRECT_EXEMPT = [r"^health/live$", r"^health/ready$"]
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# The admin's (staff) sign-in ends like an API session does: not two weeks, Django's default.
SESSION_COOKIE_AGE = SESSION_MAX_AGE_SECONDS
CSRF_COOKIE_HTTPONLY = True
# A failed CSRF check (only the admin's forms have one) is a problem document too.
CSRF_FAILURE_VIEW = "gateway.problems.csrf_failure"

# plain (development) or json (one object a line, the production default; gateway.logging.JsonFormatter).
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
LOG_FORMATS = ("plain", "json")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "gateway.logging.RequestIdFilter"},
        "log_context": {"()": "gateway.logging.LogContextFilter"},
        "withhold_exception_messages": {"()": "gateway.logging.WithholdExceptionMessageFilter"},
    },
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(community)s %(user_id)s] %(message)s"
        },
        "json": {"()": "gateway.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT if LOG_FORMAT in LOG_FORMATS else "json",
            "filters": ["request_id", "log_context", "withhold_exception_messages"],
        },
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Request bodies and headers never reach the log; only method, path and status.
        "django.request": {"level": "ERROR"},
        "django.security": {"level": "WARNING"},
    },
}


# --- Cross-package hooks -------------------------------------------------------------------------
# Dotted paths through which a lower layer calls a higher one without importing it (the import
# contract in pyproject.toml forbids the import). Each callable is typed by a Protocol where it is
# called, and tests/architecture/test_settings_hooks.py checks each one resolves and fits it.
# Who supplies context.break_glass (the subject's active emergency grant) to the policy input.
POLICY_BREAK_GLASS_CONTEXT = "security.breakglass.selectors.break_glass_context"
# Whether a grant's participant or study exists in the community (services answers; security does not import it).
BREAK_GLASS_SCOPE_EXISTS = "services.participants.selectors.break_glass_scope_exists"
# What a grant covers in words (a participant's pseudonym, a study's title), for the review queue (as above).
BREAK_GLASS_SCOPE_WORDS = "services.participants.selectors.break_glass_scope_words"
# The accounting an offboarding archive keeps: entries with their basis, requests, copies (research apps).
AUDIT_ARCHIVE_ACCOUNTING = "services.accounting.archive.archived_accounting"
# What /health/ready checks: the edge's own, and the policy engine's and key service's from their packages.
READINESS_CHECKS = {
    "postgresql": "gateway.health.check_postgresql",
    "redis": "gateway.health.check_redis",
    "rabbitmq": "gateway.health.check_rabbitmq",
    "policy": "policy.engine.check_policy_ready",
    "keys": "vault.providers.check_key_provider_ready",
}


# --- De-identified exports: small cells, the ZIP3 table, the value set (services/exports) -----------------
# k of the k-anonymity over (sex, birth year, state, ZIP3) every export keeps (164.514(b)(2)(ii)); 11 is the
# cell size CMS and most registries suppress below. It may be raised, never set below the floor of 2.
DEIDENTIFIED_EXPORT_MIN_CELL_FLOOR = 2
DEIDENTIFIED_EXPORT_MIN_CELL = max(
    env_int("DEIDENTIFIED_EXPORT_MIN_CELL", default=11), DEIDENTIFIED_EXPORT_MIN_CELL_FLOOR
)
# The ZIP3 table (a path); empty: services/exports/data/zip3_population.csv once built, else the shipped allow-list.
DEIDENTIFIED_EXPORT_ZIP3_TABLE = env_str("DEIDENTIFIED_EXPORT_ZIP3_TABLE", "")
# Codes an operator adds to the shipped value set (a CSV of system,code,meaning; a path, empty for none).
DEIDENTIFIED_EXPORT_EXTRA_CODES = env_str("DEIDENTIFIED_EXPORT_EXTRA_CODES", "")
