"""What makes an environment fit for production, kept apart from the settings that enforce it.

Importing :mod:`config.settings.production` refuses to start when
:func:`configuration_problems` finds anything; keeping the checks here lets
them be tested without starting a server.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import ParseResult, parse_qs, urlparse

from config.database_roles import ROLES, user_of

REQUIRED_VARIABLES = (
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "PUBLIC_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "CACHE_URL",
    "RABBITMQ_URL",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_SIGNING_KEYS_DIR",
    "OPA_URL",
    "METRICS_TOKEN",
)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
MINIMUM_SECRET_KEY_LENGTH = 50
# deploy/opa/system.authz.rego refuses a shorter token too.
MINIMUM_OPA_TOKEN_LENGTH = 32
TLS_DATABASE_MODES = {"verify-full"}


MAXIMUM_JWT_LEEWAY_SECONDS = 60
# HSTS is sent with preload, which the browsers' preload list accepts from one year; production's default is two.
MINIMUM_HSTS_SECONDS = 365 * 24 * 3600
DEBUG_VALUES = {"1", "true", "yes", "on"}
# Automatic logoff: a session may last a working day at most, and a "still live" revocation answer
# may hide a database-only revocation for a minute at most. The defaults are those of base settings.
MAXIMUM_SESSION_MAX_AGE_SECONDS = 24 * 3600
MAXIMUM_REVOCATION_LIVE_CACHE_SECONDS = 60
DEFAULT_ACCESS_TOKEN_TTL_SECONDS = 3600
DEFAULT_SESSION_MAX_AGE_SECONDS = 12 * 3600
DEFAULT_IDLE_BEYOND_ACCESS_TOKEN_SECONDS = 1800
DEFAULT_REVOCATION_LIVE_CACHE_SECONDS = 5


def configuration_problems(environ: Mapping[str, str]) -> list[str]:
    """Return every reason the given environment is unfit for production (empty when fit)."""
    problems = [f"{name} is not set" for name in REQUIRED_VARIABLES if not environ.get(name, "").strip()]
    if environ.get("DJANGO_DEBUG", "").strip().lower() in DEBUG_VALUES:
        problems.append("DJANGO_DEBUG is on (production never runs with DEBUG)")
    secret = environ.get("DJANGO_SECRET_KEY", "")
    if secret and len(secret) < MINIMUM_SECRET_KEY_LENGTH:
        problems.append(f"DJANGO_SECRET_KEY is shorter than {MINIMUM_SECRET_KEY_LENGTH} characters")
    leeway = environ.get("JWT_LEEWAY_SECONDS", "").strip()
    if leeway and (not leeway.isdigit() or int(leeway) > MAXIMUM_JWT_LEEWAY_SECONDS):
        problems.append(f"JWT_LEEWAY_SECONDS must be a whole number of at most {MAXIMUM_JWT_LEEWAY_SECONDS}")
    fallbacks = [key for key in environ.get("DJANGO_SECRET_KEY_FALLBACKS", "").split(",") if key.strip()]
    if any(len(key.strip()) < MINIMUM_SECRET_KEY_LENGTH for key in fallbacks):
        problems.append(f"DJANGO_SECRET_KEY_FALLBACKS holds a key shorter than {MINIMUM_SECRET_KEY_LENGTH} characters")
    cache_url = environ.get("CACHE_URL", "")
    if cache_url and cache_url == environ.get("REDIS_URL"):
        problems.append("CACHE_URL equals REDIS_URL: a cache flush would also drop token revocations and lockouts")
    problems.extend(_session_lifetimes(environ))
    problems.extend(_database_roles(environ))
    problems.extend(_plaintext_backends(environ))
    problems.extend(_mail_transport(environ))
    problems.extend(_https_only(environ))
    problems.extend(_development_policy(environ))
    problems.extend(_development_keys(environ))
    problems.extend(_gateway_trust(environ))
    if environ.get("DEIDENTIFIED_EXPORT_STORAGE", "s3" if environ.get("AWS_S3_BUCKET") else "local") != "s3":
        problems.append("AWS_S3_BUCKET is not set (production keeps de-identified exports in S3, not on a host)")
    problems.extend(_audit_witness(environ))
    return problems


def _audit_witness(environ: Mapping[str, str]) -> list[str]:
    """Checkpoints must be witnessed where the database cannot rewrite them: S3 Object Lock, not a local directory."""
    bucket = environ.get("AUDIT_WITNESS_S3_BUCKET", "").strip() or environ.get("AWS_S3_BUCKET", "").strip()
    if environ.get("AUDIT_WITNESS", "s3" if environ.get("AWS_S3_BUCKET") else "local") != "s3":
        return ["AUDIT_WITNESS is not s3 (the local witness directory is for development and tests)"]
    if not bucket:
        return ["AUDIT_WITNESS_S3_BUCKET is not set (the witness needs a bucket with Object Lock enabled)"]
    return []


MINIMUM_PROXY_SECRET_LENGTH = 32
SUPERUSER_NAMES = {"postgres"}


def _database_roles(environ: Mapping[str, str]) -> list[str]:
    """The service runs as its own role, never as the tables' owner, whose credentials it does not hold."""
    role = environ.get("DATABASE_ROLE", "service").strip() or "service"
    service, owner = user_of(environ.get("DATABASE_URL", "")), user_of(environ.get("DATABASE_OWNER_URL", ""))
    if role not in ROLES:
        return [f"DATABASE_ROLE must be one of {', '.join(ROLES)}"]
    problems = []
    if service in SUPERUSER_NAMES:
        problems.append(f"DATABASE_URL connects as {service}: the service needs a role of its own")
    if role == "owner" and not owner:
        problems.append("DATABASE_ROLE is owner but DATABASE_OWNER_URL is not set")
    if owner and owner == service:
        problems.append("DATABASE_OWNER_URL and DATABASE_URL name the same user: the owner and the service must differ")
    if role == "service" and owner:
        problems.append("DATABASE_OWNER_URL is set for the service: only migrations and schema commands need it")
    owner_url = environ.get("DATABASE_OWNER_URL", "")
    if owner_url and parse_qs(urlparse(owner_url).query).get("sslmode", [""])[0] not in TLS_DATABASE_MODES:
        problems.append("DATABASE_OWNER_URL does not verify the server's certificate (add ?sslmode=verify-full)")
    return problems


def _seconds(environ: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    """``name`` as a whole number of seconds (``default`` when unset); a problem, and the default, when not one."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit() and int(raw) > 0):
        problems.append(f"{name} must be a whole number of seconds above 0")
        return default
    return int(raw)


def _session_lifetimes(environ: Mapping[str, str]) -> list[str]:
    """Sessions must end (HIPAA automatic logoff): bounded, idle below absolute, revocations seen soon."""
    problems: list[str] = []
    access = _seconds(environ, "ACCESS_TOKEN_TTL_SECONDS", DEFAULT_ACCESS_TOKEN_TTL_SECONDS, problems)
    max_age = _seconds(environ, "SESSION_MAX_AGE_SECONDS", DEFAULT_SESSION_MAX_AGE_SECONDS, problems)
    idle = _seconds(
        environ, "SESSION_IDLE_TIMEOUT_SECONDS", access + DEFAULT_IDLE_BEYOND_ACCESS_TOKEN_SECONDS, problems
    )
    live = _seconds(environ, "REVOCATION_LIVE_CACHE_SECONDS", DEFAULT_REVOCATION_LIVE_CACHE_SECONDS, problems)
    if max_age > MAXIMUM_SESSION_MAX_AGE_SECONDS:
        problems.append(f"SESSION_MAX_AGE_SECONDS exceeds {MAXIMUM_SESSION_MAX_AGE_SECONDS} (sessions must end daily)")
    if idle > max_age:
        problems.append("SESSION_IDLE_TIMEOUT_SECONDS exceeds SESSION_MAX_AGE_SECONDS (it would never apply)")
    if access >= idle:
        problems.append(
            "ACCESS_TOKEN_TTL_SECONDS is not below SESSION_IDLE_TIMEOUT_SECONDS "
            "(active clients refresh once per access token, so they would be logged off)"
        )
    if live > MAXIMUM_REVOCATION_LIVE_CACHE_SECONDS:
        problems.append(f"REVOCATION_LIVE_CACHE_SECONDS exceeds {MAXIMUM_REVOCATION_LIVE_CACHE_SECONDS}")
    return problems


def _gateway_trust(environ: Mapping[str, str]) -> list[str]:
    """Requests must come through a proven gateway: its addresses and shared secret are required."""
    if environ.get("REQUIRE_GATEWAY", "true").strip().lower() not in {"1", "true", "yes", "on"}:
        return []
    problems = []
    proxies = [proxy.strip() for proxy in environ.get("TRUSTED_PROXIES", "").split(",") if proxy.strip()]
    if not proxies:
        problems.append("TRUSTED_PROXIES is not set (the gateway's addresses)")
    for proxy in proxies:
        try:
            network = ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            problems.append(f"TRUSTED_PROXIES holds {proxy!r}, which is not an address or CIDR")
            continue
        if network.prefixlen == 0:
            problems.append("TRUSTED_PROXIES must not trust every address")
    if len(environ.get("PROXY_SHARED_SECRET", "").strip()) < MINIMUM_PROXY_SECRET_LENGTH:
        problems.append(f"PROXY_SHARED_SECRET is missing or shorter than {MINIMUM_PROXY_SECRET_LENGTH} characters")
    return problems


def _development_keys(environ: Mapping[str, str]) -> list[str]:
    """The local key provider is a development component; Vault must be reached over TLS, authenticated."""
    problems = []
    if environ.get("KEY_PROVIDER", "local") != "vault":
        problems.append("KEY_PROVIDER is not vault (the local key provider is for development and tests)")
    if urlparse(environ.get("VAULT_ADDR", "")).scheme != "https":
        problems.append("VAULT_ADDR is not an https URL")
    approle = environ.get("VAULT_ROLE_ID", "").strip() and environ.get("VAULT_SECRET_ID", "").strip()
    if not environ.get("VAULT_TOKEN", "").strip() and not approle:
        problems.append("Vault credentials are missing: set VAULT_ROLE_ID and VAULT_SECRET_ID (AppRole) or VAULT_TOKEN")
    return problems


def _development_policy(environ: Mapping[str, str]) -> list[str]:
    """The embedded Rego engine is a development component; OPA must be reached safely."""
    problems = []
    if environ.get("POLICY_ENGINE", "embedded") != "opa":
        problems.append("POLICY_ENGINE is not opa (the embedded engine is for development and tests)")
    opa = urlparse(environ.get("OPA_URL", ""))
    if opa.scheme == "http" and opa.hostname not in LOOPBACK_HOSTS:
        problems.append("OPA_URL is plain http to another host (use https, or a loopback sidecar)")
    problems.extend(_opa_credentials(environ, opa))
    return problems


def _opa_credentials(environ: Mapping[str, str], opa: ParseResult) -> list[str]:
    """An OPA off this host must require the service's token; a token must be long, a CA must have https to verify."""
    problems = []
    token = environ.get("OPA_TOKEN", "")
    if opa.username or opa.password:
        problems.append("OPA_URL carries credentials (the token goes in OPA_TOKEN, sent as a bearer token)")
    if not token and opa.hostname and opa.hostname not in LOOPBACK_HOSTS:
        problems.append(
            "OPA_TOKEN is not set: an OPA off this host must require the service's token "
            "(deploy/opa runs it with --authentication=token --authorization=basic)"
        )
    if token and len(token) < MINIMUM_OPA_TOKEN_LENGTH:
        problems.append(f"OPA_TOKEN is shorter than {MINIMUM_OPA_TOKEN_LENGTH} characters")
    if environ.get("OPA_CACERT", "").strip() and opa.scheme != "https":
        problems.append("OPA_CACERT is set but OPA_URL is not https (nothing to verify)")
    return problems


def _plaintext_backends(environ: Mapping[str, str]) -> list[str]:
    """Name the backing services configured without TLS: those are development components."""
    problems = []
    database_url = environ.get("DATABASE_URL", "")
    if database_url and parse_qs(urlparse(database_url).query).get("sslmode", [""])[0] not in TLS_DATABASE_MODES:
        problems.append("DATABASE_URL does not verify the server's certificate (add ?sslmode=verify-full)")
    for name in ("REDIS_URL", "CACHE_URL"):
        url = urlparse(environ.get(name, ""))
        if url.scheme and url.scheme != "rediss":
            problems.append(f"{name} is not a TLS URL (rediss://)")
        elif parse_qs(url.query).get("ssl_cert_reqs", ["required"])[0].lower() in {"none", "optional"}:
            problems.append(f"{name} does not verify the server's certificate (ssl_cert_reqs)")
    rabbitmq_url = environ.get("RABBITMQ_URL", "")
    if rabbitmq_url and urlparse(rabbitmq_url).scheme != "amqps":
        problems.append("RABBITMQ_URL is not a TLS URL (amqps://)")
    return problems


def _mail_transport(environ: Mapping[str, str]) -> list[str]:
    """Mail leaves over TLS (STARTTLS or implicit TLS, exactly one) whenever it goes to an SMTP server.

    Break-glass notices name the grant's holder, the participant or study and
    the community. An SMTP server is in play when the SMTP backend is chosen,
    or when ``EMAIL_HOST`` is set (a custom backend would send to it).
    """
    starttls, implicit = _flag(environ, "EMAIL_USE_TLS"), _flag(environ, "EMAIL_USE_SSL")
    if starttls and implicit:
        return ["EMAIL_USE_TLS and EMAIL_USE_SSL are both on (Django refuses to send with both: choose one)"]
    smtp = environ.get("EMAIL_BACKEND", "").strip().endswith("smtp.EmailBackend")
    if (smtp or environ.get("EMAIL_HOST", "").strip()) and not (starttls or implicit):
        return [
            "EMAIL_USE_TLS and EMAIL_USE_SSL are both off for an SMTP server "
            "(break-glass notices would travel in clear)"
        ]
    return []


def _https_only(environ: Mapping[str, str]) -> list[str]:
    """Plain http is redirected and HSTS is kept long enough for the preload list (one year at least)."""
    problems = []
    if environ.get("SECURE_SSL_REDIRECT", "true").strip().lower() not in {"1", "true", "yes", "on"}:
        problems.append("SECURE_SSL_REDIRECT is off (plain http would be served)")
    hsts = environ.get("SECURE_HSTS_SECONDS", "").strip()
    if hsts and not (hsts.isascii() and hsts.isdigit() and int(hsts) >= MINIMUM_HSTS_SECONDS):
        problems.append(f"SECURE_HSTS_SECONDS must be a whole number of at least {MINIMUM_HSTS_SECONDS} (one year)")
    return problems


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
