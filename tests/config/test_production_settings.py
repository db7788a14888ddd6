"""Production settings refuse to start when something is missing, unsafe or a development component."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from config.production_checks import REQUIRED_VARIABLES, configuration_problems

REPOSITORY = Path(__file__).resolve().parents[2]

COMPLETE = {
    "DJANGO_SECRET_KEY": "k" * 64,
    "DJANGO_ALLOWED_HOSTS": "api.example.org",
    "PUBLIC_HOSTS": "platform.example.org",
    "DATABASE_URL": "postgres://app@db.internal:5432/gateway?sslmode=verify-full",
    "REDIS_URL": "rediss://security-state.internal:6380/0",
    "CACHE_URL": "rediss://cache.internal:6380/0",
    "RABBITMQ_URL": "amqps://app@broker.internal:5671/gateway",
    "JWT_ISSUER": "https://auth.example.org",
    "JWT_AUDIENCE": "https://api.example.org",
    "JWT_SIGNING_KEYS_DIR": "/run/secrets/jwt-keys",
    "POLICY_ENGINE": "opa",
    "OPA_URL": "http://127.0.0.1:8181",
    "METRICS_TOKEN": "m" * 40,
    "KEY_PROVIDER": "vault",
    "VAULT_ADDR": "https://vault.internal:8200",
    "VAULT_ROLE_ID": "gateway",
    "VAULT_SECRET_ID": "s3cr3t-from-the-orchestrator",
    "TRUSTED_PROXIES": "10.20.0.0/24",
    "PROXY_SHARED_SECRET": "p" * 48,
    "AWS_S3_BUCKET": "gateway-exports",
    "AUDIT_WITNESS": "s3",
    "AUDIT_WITNESS_S3_BUCKET": "gateway-audit-witness",
}


def start_production(
    environ: dict[str, str], program: str = "import django; django.setup(); print('started')"
) -> subprocess.CompletedProcess[str]:
    """Run ``program`` under the production settings in a clean interpreter, as a server would."""
    clean = {key: value for key, value in os.environ.items() if key not in COMPLETE and key != "DJANGO_DEBUG"}
    clean.update(environ, DJANGO_SETTINGS_MODULE="config.settings.production")
    return subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", program],
        cwd=REPOSITORY,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
    )


def read_production_settings(environ: dict[str, str], *names: str) -> dict[str, Any]:
    """The values production settings give ``names`` in ``environ``, read in a clean interpreter."""
    program = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name) for name in {names!r}}}))"
    )
    result = start_production(environ, program)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_a_complete_configuration_starts() -> None:
    result = start_production(COMPLETE)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"


def test_an_empty_environment_is_refused_naming_every_missing_variable() -> None:
    result = start_production({})

    assert result.returncode != 0
    assert "production settings refused" in result.stderr
    for name in REQUIRED_VARIABLES:
        assert f"{name} is not set" in result.stderr
    assert "POLICY_ENGINE is not opa" in result.stderr
    assert "KEY_PROVIDER is not vault" in result.stderr


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"DJANGO_DEBUG": "true"}, "DJANGO_DEBUG is on"),
        ({"DJANGO_SECRET_KEY": "short"}, "DJANGO_SECRET_KEY is shorter than 50 characters"),
        ({"REDIS_URL": "redis://cache.internal:6379/0"}, "REDIS_URL is not a TLS URL"),
        ({"RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672//"}, "RABBITMQ_URL is not a TLS URL"),
        (
            {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend"},
            "EMAIL_USE_TLS and EMAIL_USE_SSL are both off",
        ),
        ({"EMAIL_HOST": "smtp.example.org"}, "EMAIL_USE_TLS and EMAIL_USE_SSL are both off"),
        (
            {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_USE_SSL": "off"},
            "EMAIL_USE_TLS and EMAIL_USE_SSL are both off",
        ),
        (
            {"EMAIL_HOST": "smtp.example.org", "EMAIL_USE_TLS": "true", "EMAIL_USE_SSL": "true"},
            "EMAIL_USE_TLS and EMAIL_USE_SSL are both on",
        ),
        ({"SECURE_SSL_REDIRECT": "false"}, "SECURE_SSL_REDIRECT is off"),
        ({"SECURE_SSL_REDIRECT": ""}, "SECURE_SSL_REDIRECT is off"),
        ({"SECURE_HSTS_SECONDS": "0"}, "SECURE_HSTS_SECONDS must be a whole number of at least 31536000"),
        ({"SECURE_HSTS_SECONDS": "86400"}, "SECURE_HSTS_SECONDS must be a whole number of at least 31536000"),
        ({"SECURE_HSTS_SECONDS": "two years"}, "SECURE_HSTS_SECONDS must be a whole number of at least 31536000"),
        (
            {"DATABASE_URL": "postgres://postgres@db.internal/gateway?sslmode=verify-full"},
            "DATABASE_URL connects as postgres",
        ),
        (
            {"DATABASE_OWNER_URL": "postgres://owner@db.internal:5432/gateway?sslmode=verify-full"},
            "DATABASE_OWNER_URL is set for the service",
        ),
        ({"DATABASE_ROLE": "owner"}, "DATABASE_ROLE is owner but DATABASE_OWNER_URL is not set"),
        (
            {"DATABASE_ROLE": "owner", "DATABASE_OWNER_URL": "postgres://app@db.internal/gateway?sslmode=verify-full"},
            "DATABASE_OWNER_URL and DATABASE_URL name the same user",
        ),
        (
            {"DATABASE_ROLE": "owner", "DATABASE_OWNER_URL": "postgres://owner@db.internal/gateway"},
            "DATABASE_OWNER_URL does not verify",
        ),
        ({"DATABASE_ROLE": "root"}, "DATABASE_ROLE must be one of"),
        (
            {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_USE_TLS": "no"},
            "EMAIL_USE_TLS and EMAIL_USE_SSL are both off",
        ),
        ({"DATABASE_URL": "postgres://app@db.internal/gateway"}, "DATABASE_URL does not verify"),
        ({"DATABASE_URL": "postgres://app@db.internal/gateway?sslmode=require"}, "DATABASE_URL does not verify"),
        ({"CACHE_URL": "rediss://cache.internal:6380/0?ssl_cert_reqs=none"}, "CACHE_URL does not verify"),
        ({"CACHE_URL": "rediss://security-state.internal:6380/0"}, "CACHE_URL equals REDIS_URL"),
        ({"DJANGO_SECRET_KEY_FALLBACKS": "k" * 64 + ",short"}, "DJANGO_SECRET_KEY_FALLBACKS holds a key shorter"),
        ({"JWT_LEEWAY_SECONDS": "300"}, "JWT_LEEWAY_SECONDS must be a whole number of at most 60"),
        ({"JWT_SIGNING_KEYS_DIR": ""}, "JWT_SIGNING_KEYS_DIR is not set"),
        ({"POLICY_ENGINE": "embedded"}, "POLICY_ENGINE is not opa"),
        ({"OPA_URL": "http://opa.internal:8181", "OPA_TOKEN": "t" * 40}, "OPA_URL is plain http to another host"),
        ({"KEY_PROVIDER": "local"}, "KEY_PROVIDER is not vault"),
        ({"VAULT_ADDR": "http://vault.internal:8200"}, "VAULT_ADDR is not an https URL"),
        ({"VAULT_SECRET_ID": ""}, "Vault credentials are missing"),
        ({"TRUSTED_PROXIES": ""}, "TRUSTED_PROXIES is not set"),
        ({"TRUSTED_PROXIES": "0.0.0.0/0"}, "TRUSTED_PROXIES must not trust every address"),
        ({"TRUSTED_PROXIES": "kong.internal"}, "TRUSTED_PROXIES holds 'kong.internal'"),
        ({"PROXY_SHARED_SECRET": "short"}, "PROXY_SHARED_SECRET is missing or shorter"),
        ({"AWS_S3_BUCKET": ""}, "AWS_S3_BUCKET is not set"),
        ({"DEIDENTIFIED_EXPORT_STORAGE": "local"}, "AWS_S3_BUCKET is not set"),
        ({"AUDIT_WITNESS": "local"}, "AUDIT_WITNESS is not s3"),
        ({"AUDIT_WITNESS": ""}, "AUDIT_WITNESS is not s3"),
        ({"SESSION_MAX_AGE_SECONDS": str(7 * 24 * 3600)}, "SESSION_MAX_AGE_SECONDS exceeds 86400"),
        ({"SESSION_MAX_AGE_SECONDS": "3600"}, "SESSION_IDLE_TIMEOUT_SECONDS exceeds SESSION_MAX_AGE_SECONDS"),
        ({"SESSION_IDLE_TIMEOUT_SECONDS": "1800"}, "ACCESS_TOKEN_TTL_SECONDS is not below SESSION_IDLE_TIMEOUT"),
        ({"SESSION_IDLE_TIMEOUT_SECONDS": "forever"}, "SESSION_IDLE_TIMEOUT_SECONDS must be a whole number"),
        ({"SESSION_MAX_AGE_SECONDS": "0"}, "SESSION_MAX_AGE_SECONDS must be a whole number"),
        ({"REVOCATION_LIVE_CACHE_SECONDS": "300"}, "REVOCATION_LIVE_CACHE_SECONDS exceeds 60"),
    ],
)
def test_each_unsafe_setting_is_refused_by_name(change: dict[str, str], reason: str) -> None:
    (problem,) = configuration_problems({**COMPLETE, **change})

    assert problem.startswith(reason)


def test_the_witness_needs_a_bucket_of_its_own_or_the_exports_one() -> None:
    assert configuration_problems({**COMPLETE, "AUDIT_WITNESS_S3_BUCKET": ""}) == []  # falls back to AWS_S3_BUCKET
    problems = configuration_problems({**COMPLETE, "AUDIT_WITNESS_S3_BUCKET": "", "AWS_S3_BUCKET": ""})

    assert any(problem.startswith("AUDIT_WITNESS_S3_BUCKET is not set") for problem in problems)


def test_a_refused_start_says_why_in_one_message() -> None:
    result = start_production({**COMPLETE, "DJANGO_DEBUG": "1"})

    assert result.returncode != 0
    assert "DJANGO_DEBUG is on (production never runs with DEBUG)" in result.stderr


def test_a_shorter_access_token_moves_the_default_idle_timeout_with_it() -> None:
    assert configuration_problems({**COMPLETE, "ACCESS_TOKEN_TTL_SECONDS": "900"}) == []


@pytest.mark.parametrize("transport", ["EMAIL_USE_TLS", "EMAIL_USE_SSL"])
def test_mail_over_starttls_or_implicit_tls_starts(transport: str) -> None:
    smtp = {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "smtp.example.org"}

    assert configuration_problems({**COMPLETE, **smtp, transport: "true"}) == []


def test_production_sends_mail_over_implicit_tls_when_told() -> None:
    smtp = {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "smtp.example.org"}

    result = read_production_settings({**COMPLETE, **smtp, "EMAIL_USE_SSL": "true"}, "EMAIL_USE_SSL", "EMAIL_USE_TLS")

    assert result == {"EMAIL_USE_SSL": True, "EMAIL_USE_TLS": False}


def test_production_redirects_to_https_and_sends_hsts_for_two_years_with_subdomains_and_preload() -> None:
    names = ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD")

    assert read_production_settings(COMPLETE, *names) == {
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 2 * 365 * 24 * 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
    }


def test_a_production_server_answers_plain_http_with_a_redirect_and_https_with_hsts() -> None:
    probe = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "plain = Client().get('/.well-known/jwks.json', HTTP_HOST='platform.example.org')\n"
        "secure = Client().get('/health/live', HTTP_HOST='platform.example.org', secure=True)\n"
        "probe = Client().get('/health/live', HTTP_HOST='platform.example.org')\n"
        "print(plain.status_code, plain.headers.get('Location'))\n"
        "print(secure.headers.get('Strict-Transport-Security'))\n"
        "print(probe.status_code, probe.headers.get('Location'))\n"
    )
    result = start_production({**COMPLETE, "DJANGO_ALLOWED_HOSTS": "platform.example.org"}, probe)

    assert result.returncode == 0, result.stderr
    redirect, hsts, probed = result.stdout.strip().splitlines()[-3:]
    assert redirect == "301 https://platform.example.org/.well-known/jwks.json"
    assert hsts == "max-age=63072000; includeSubDomains; preload"
    # The orchestrator's probe over plain HTTP is answered, not redirected (deployment.md, the probes).
    assert probed == "200 None"


def test_a_migration_job_connects_as_the_owner_and_grants_the_service_role() -> None:
    environment = {
        **COMPLETE,
        "DATABASE_ROLE": "owner",
        "DATABASE_OWNER_URL": "postgres://owner@db.internal:5432/gateway?sslmode=verify-full",
    }

    assert not [problem for problem in configuration_problems(environment) if "DATABASE" in problem]
