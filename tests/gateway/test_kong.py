"""Kong's configuration is generated from the URLconf and committed; nothing drifts."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from gateway.kong import NOT_DEPLOYABLE, kong_config, missing_kong_routes, render
from security.identity.signing_keys import generate_signing_key, reset_keyring_cache
from tests.gateway.conftest import COMMITTED, certificate_authority, issuer_of, kong_conf


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
    assert service_plugins["rate-limiting"] == {
        "minute": 100,
        "limit_by": "ip",
        "policy": "redis",
        "fault_tolerant": False,
        "hide_client_headers": True,  # the service's RateLimit-* headers are the ones a client sees
        "redis": {
            "host": "kong-redis.internal",
            "port": 6379,
            "ssl": True,
            "ssl_verify": True,
            "server_name": "kong-redis.internal",
            "password": "{vault://env/kong-redis-password}",
        },
    }
    assert "plugins" not in config["consumers"][0]  # it would replace the per-IP limit; users are the service's
    assert "X-Request-ID" in service_plugins["pre-function"]["access"][0]  # a client's own id is dropped
    assert "X-Gateway-Signature" in service_plugins["post-function"]["access"][0]


def test_no_route_requires_a_length_and_the_limit_is_the_services_to_the_byte() -> None:
    config = yaml.safe_load(COMMITTED.read_text())
    by_name = routes(config)
    limits = [plugins(config["services"][0]["plugins"])["request-size-limiting"]] + [
        plugins(route.get("plugins", []))["request-size-limiting"]
        for route in by_name.values()
        if "request-size-limiting" in plugins(route.get("plugins", []))
    ]

    # require_content_length would answer 411 to a POST without a body (handler.lua@3.9.1:49-50).
    assert limits == [{"allowed_payload_size": settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "size_unit": "bytes"}]
    assert by_name["study-list"]["methods"] == ["GET", "HEAD", "POST"]
    assert by_name["participant-detail"]["methods"] == ["GET", "HEAD", "PATCH"]
    assert by_name["auth-token"]["methods"] == ["POST"]


def test_nginx_stops_a_body_at_the_services_limit_while_reading_it() -> None:
    assert int(kong_conf()["nginx_http_client_max_body_size"]) == settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def test_kong_sends_the_services_own_host_on_every_route() -> None:
    by_name = routes(yaml.safe_load(COMMITTED.read_text()))

    assert {route["preserve_host"] for route in by_name.values()} == {False}


def test_tokens_never_travel_in_urls_and_public_routes_need_none() -> None:
    by_name = routes(yaml.safe_load(COMMITTED.read_text()))

    jwt = plugins(by_name["me"]["plugins"])["jwt"]
    assert jwt["uri_param_names"] == []
    assert jwt["cookie_names"] == []
    for public in ("auth-refresh", "jwks"):
        assert "jwt" not in plugins(by_name[public].get("plugins", []))
    assert "jwt" not in plugins(by_name["auth-token"].get("plugins", []))
    assert not any(name.startswith("health") for name in by_name)  # probes go straight to the pods


def test_kongs_token_checks_leave_the_services_leeway() -> None:
    jwt = plugins(routes(yaml.safe_load(COMMITTED.read_text()))["me"]["plugins"])["jwt"]

    assert jwt["claims_to_verify"] == ["exp"]  # nbf has no leeway at Kong; the service checks it
    assert jwt["maximum_expiration"] == settings.ACCESS_TOKEN_TTL_SECONDS + settings.JWT_LEEWAY_SECONDS


def test_the_admin_is_behind_an_ip_restriction_on_the_platform_host() -> None:
    admin = routes(yaml.safe_load(COMMITTED.read_text()))["platform-admin"]

    assert admin["hosts"] == ["localhost", "127.0.0.1"]
    assert plugins(admin["plugins"])["ip-restriction"] == {
        "allow": ["127.0.0.1/32"],
        "status": 404,
        "message": "Not Found",
    }


def test_the_committed_file_says_it_is_not_the_file_to_deploy() -> None:
    assert NOT_DEPLOYABLE in COMMITTED.read_text()
    assert "ca_certificates" not in COMMITTED.read_text()


def deploy(tmp_path: Path, *options: str) -> Path:
    out = tmp_path / "kong.deploy.yml"
    call_command("kong_config", *options, "--out", str(out), stdout=io.StringIO())
    return out


def test_a_deploy_file_carries_the_public_keys_and_the_upstream_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(certificate_authority())
    with override_settings(JWT_SIGNING_KEYS_DIR=tmp_path / "keys"):
        reset_keyring_cache()
        with pytest.raises(CommandError, match="no signing keys"):
            deploy(tmp_path, "--with-keys", "--upstream-ca", str(ca))
        generate_signing_key(tmp_path / "keys")
        out = deploy(tmp_path, "--with-keys", "--upstream-ca", str(ca))
    reset_keyring_cache()

    config = yaml.safe_load(out.read_text())
    secrets = config["consumers"][0]["jwt_secrets"]
    assert secrets
    assert all(secret["algorithm"] == "EdDSA" and "PUBLIC KEY" in secret["rsa_public_key"] for secret in secrets)
    assert "PRIVATE" not in out.read_text()
    (entry,) = config["ca_certificates"]
    assert config["services"][0]["ca_certificates"] == [entry["id"]]
    assert entry["cert"].strip() == ca.read_text().strip()
    assert NOT_DEPLOYABLE not in out.read_text()


@pytest.mark.parametrize("options", [["--with-keys"], ["--upstream-ca", "ca.pem"]])
def test_a_deploy_file_is_never_written_with_the_keys_or_the_ca_alone(tmp_path: Path, options: list[str]) -> None:
    (tmp_path / "ca.pem").write_text(certificate_authority())

    with pytest.raises(CommandError, match="needs both --with-keys and --upstream-ca"):
        deploy(tmp_path, *[str(tmp_path / option) if option.endswith(".pem") else option for option in options])

    assert not (tmp_path / "kong.deploy.yml").exists()


ROOT = certificate_authority(name="upstream root CA")
INTERMEDIATE = certificate_authority(name="upstream intermediate CA", issuer=issuer_of("upstream root CA"))


@pytest.mark.parametrize(
    ("pem", "problem"),
    [
        (certificate_authority(ca=False), "is not a CA certificate"),
        (certificate_authority(days=-1), "has expired"),
        ("not a certificate", "no PEM certificate could be read"),
        # Kong's trust store takes no partial chain: an intermediate alone fails every handshake.
        (INTERMEDIATE, "does not chain up to a self-signed root in the file"),
    ],
)
def test_the_upstream_ca_is_checked_as_kong_checks_it(tmp_path: Path, pem: str, problem: str) -> None:
    (tmp_path / "ca.pem").write_text(pem)

    with pytest.raises(CommandError, match=problem):
        deploy(tmp_path, "--with-keys", "--upstream-ca", str(tmp_path / "ca.pem"))


# nginx variables that hold the query string, the whole request line or another URL.
URL_VARIABLES = re.compile(r"\$(?:request|request_uri|args|query_string|is_args|arg_\w+|upstream_uri|http_referer)\b")


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


def test_the_sandbox_allows_exactly_the_modules_the_generated_lua_requires() -> None:
    lua = [code for plugin in kong_config()["services"][0]["plugins"] for code in plugin["config"].get("access", [])]

    required = {module for code in lua for module in re.findall(r'require,? *"([^"]+)"', code)}

    assert required == {"resty.openssl.hmac"}
    assert kong_conf()["untrusted_lua_sandbox_requires"].split(",") == sorted(required)


def test_an_intermediate_with_its_root_is_a_trust_store_kong_can_use(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text(INTERMEDIATE + ROOT)

    config = yaml.safe_load(deploy(tmp_path, "--with-keys", "--upstream-ca", str(tmp_path / "ca.pem")).read_text())

    assert [entry["cert"].strip() for entry in config["ca_certificates"]] == [INTERMEDIATE.strip(), ROOT.strip()]
    assert config["services"][0]["ca_certificates"] == [entry["id"] for entry in config["ca_certificates"]]
