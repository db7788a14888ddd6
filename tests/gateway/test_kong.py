"""Kong's configuration is generated from the URLconf and committed; nothing drifts."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from gateway.kong import kong_config, missing_kong_routes, render
from security.identity.signing_keys import generate_signing_key, reset_keyring_cache

COMMITTED = Path(__file__).resolve().parents[2] / "deploy" / "kong" / "kong.yml"


def routes(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {route["name"]: route for route in config["services"][0]["routes"]}


def plugins(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {plugin["name"]: plugin["config"] for plugin in entries}


def test_the_committed_file_is_what_the_command_generates() -> None:
    out = io.StringIO()

    call_command("kong_config", "--check", "--out", str(COMMITTED), stdout=out)

    assert "up to date" in out.getvalue()
    assert COMMITTED.read_text() == render(kong_config())


def test_a_drifted_file_fails_the_check(tmp_path: Path) -> None:
    drifted = tmp_path / "kong.yml"
    drifted.write_text(COMMITTED.read_text().replace("fault_tolerant: false", "fault_tolerant: true"))

    with pytest.raises(CommandError, match="not what kong_config generates"):
        call_command("kong_config", "--check", "--out", str(drifted), stdout=io.StringIO())


def test_every_api_route_has_a_kong_route() -> None:
    config = yaml.safe_load(COMMITTED.read_text())

    assert missing_kong_routes(config, "config.urls_tenant") == []


def test_a_new_api_route_without_a_kong_route_is_caught() -> None:
    config = yaml.safe_load(COMMITTED.read_text())

    assert missing_kong_routes(config, "tests.policy.probe_urls") == [
        "api/v1/probe/untyped",
        "api/v1/probe/participants/<uuid:pk>",
        "api/v1/probe/participants",
        "api/v1/probe/keys/rotate",
        "api/v1/probe/audit",
        "api/v1/probe/study",
    ]


def test_the_format_and_the_plugins_kong_must_run() -> None:
    config = yaml.safe_load(COMMITTED.read_text())
    service = config["services"][0]
    service_plugins = plugins(service["plugins"])

    assert config["_format_version"] == "3.0"
    assert service["tls_verify"] is True
    assert service["client_certificate"]["id"] == config["certificates"][0]["id"]
    assert service_plugins["rate-limiting"] | {"redis": None} == {
        "minute": 100,
        "limit_by": "ip",
        "policy": "redis",
        "fault_tolerant": False,
        "redis": None,
    }
    assert "request-size-limiting" not in service_plugins  # per body route: a GET needs no length
    assert plugins(routes(config)["auth-token"]["plugins"])["request-size-limiting"]["require_content_length"] is True
    assert "request-size-limiting" not in plugins(routes(config)["me"]["plugins"])
    assert service_plugins["correlation-id"] == {
        "header_name": "X-Request-ID",
        "generator": "uuid",
        "echo_downstream": True,
    }
    assert "plugins" not in config["consumers"][0]  # it would replace the per-IP limit; users are the service's
    assert "X-Request-ID" in service_plugins["pre-function"]["access"][0]  # a client's own id is dropped
    assert "X-Gateway-Signature" in service_plugins["post-function"]["access"][0]  # signed after correlation-id


def test_tokens_never_travel_in_urls_and_public_routes_need_none() -> None:
    by_name = routes(yaml.safe_load(COMMITTED.read_text()))

    jwt = plugins(by_name["me"]["plugins"])["jwt"]
    assert jwt["uri_param_names"] == []
    assert jwt["cookie_names"] == []
    assert jwt["claims_to_verify"] == ["exp", "nbf"]
    for public in ("auth-refresh", "jwks"):
        assert "jwt" not in plugins(by_name[public].get("plugins", []))
    assert "jwt" not in plugins(by_name["auth-token"]["plugins"])
    assert not any(name.startswith("health") for name in by_name)  # probes go straight to the pods


def test_the_admin_is_behind_an_ip_restriction_on_the_platform_host() -> None:
    admin = routes(yaml.safe_load(COMMITTED.read_text()))["platform-admin"]

    assert admin["hosts"] == ["localhost", "127.0.0.1"]
    assert plugins(admin["plugins"])["ip-restriction"]["allow"] == ["127.0.0.1/32"]


def test_with_keys_the_token_issuer_consumer_carries_the_public_keys(tmp_path: Path) -> None:
    out = tmp_path / "kong.yml"
    with override_settings(JWT_SIGNING_KEYS_DIR=tmp_path / "keys"):
        reset_keyring_cache()
        with pytest.raises(CommandError, match="no signing keys"):
            call_command("kong_config", "--with-keys", "--out", str(out), stdout=io.StringIO())
        generate_signing_key(tmp_path / "keys")
        call_command("kong_config", "--with-keys", "--out", str(out), stdout=io.StringIO())
    reset_keyring_cache()

    secrets = yaml.safe_load(out.read_text())["consumers"][0]["jwt_secrets"]
    assert secrets
    assert all(secret["algorithm"] == "EdDSA" and "PUBLIC KEY" in secret["rsa_public_key"] for secret in secrets)
    assert "PRIVATE" not in out.read_text()


KONG_CONF = COMMITTED.parent / "kong.conf"
# nginx variables that hold the query string, the whole request line or another URL.
URL_VARIABLES = re.compile(r"\$(?:request|request_uri|args|query_string|is_args|arg_\w+|upstream_uri|http_referer)\b")


def kong_conf() -> dict[str, str]:
    lines = [line for line in KONG_CONF.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {key.strip(): value.strip() for key, value in (line.split("=", 1) for line in lines)}


def test_kongs_proxy_access_log_uses_a_format_without_the_query_string() -> None:
    conf = kong_conf()
    name, log_format = conf["nginx_http_log_format"].split(" ", 1)

    assert conf["proxy_access_log"].split() == ["/dev/stdout", name]
    assert URL_VARIABLES.findall(log_format) == []
    assert "$uri" in log_format
    assert "$kong_request_id" in log_format
    assert "#" not in log_format  # kong.conf would cut the value there


def test_the_query_string_check_would_catch_kongs_default_format() -> None:
    default = """'$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer"'"""

    assert URL_VARIABLES.findall(default) == ["$request", "$http_referer"]
