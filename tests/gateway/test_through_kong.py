"""Requests through Kong (the double of 3.9.1 over the generated deploy file) reach the service as Kong sends them.

The generated Lua runs under LuaJIT and signs; ``gateway.proxy`` checks the
signature. The settings are production's edge: a request that is not proven
to come through Kong is refused 403 ``gateway_required``.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import yaml
from django.conf import settings

from config import gunicorn as gunicorn_settings
from gateway.kong import _ONLY_KONG_SETS, FORWARDED_TARGET, GATEWAY_HOST, sample_path
from policy.routes import walk
from security.models import User
from tenants.models import Community
from tests.doubles.kong import Header, KongAnswer, KongDouble
from tests.gateway.conftest import COMMITTED, GATEWAY_SECRET, certificate_authority, issuer_of
from tests.support.clients import ALPHA_HOST, BETA_HOST
from tests.support.tokens import token_for

Kong = Callable[..., KongDouble]
BODY_METHODS = ("POST", "PUT", "PATCH")
CLIENT = "203.0.113.7"
ADMIN_CLIENT = "127.0.0.1"  # KONG_ADMIN_ALLOW
# Targets Kong forwards otherwise than they were sent (kong/tools/uri.lua@3.9.1 normalize and escape).
NORMALISED = [
    "/api/v1//me",
    "/api/v1/./me",
    "/api/v1/studies/../me",
    "/api/v1/m%65",
    "/api/v1/participants/123e4567%2de89b-12d3-a456-426614174000/",
    "/static/%7Ekong.css",
    "/static/a%2fkong.css",
    "/static/caf\xc3\xa9.css",  # the two raw bytes of UTF-8 é, as a client may send them
]
# Targets Kong forwards as sent: a bare ? is kept, the query is never rewritten (kong/runloop/handler.lua@3.9.1:1393).
AS_SENT = ["/api/v1/me?", "/api/v1/me?note=caf%C3%A9%20%2f&x=%7e"]


def routes(double: KongDouble) -> list[dict[str, Any]]:
    return list(double.config["services"][0]["routes"])


def code(answer: KongAnswer) -> str | None:
    """The service's problem code, if it answered with one that has a body (HEAD has none)."""
    service = answer.service
    if service is None or not answer.body or not service.get("Content-Type", "").startswith("application/problem"):
        return None
    problem: dict[str, Any] = answer.json()
    return str(problem.get("code"))


def proven(answer: KongAnswer) -> bool:
    """The service took the request as Kong's: it kept Kong's request id (gateway.middleware.RequestIdMiddleware)."""
    if answer.service is None or answer.upstream is None:
        return False
    return answer.service.get("X-Request-ID") == answer.upstream.header("X-Request-ID")


def bearer(token: str) -> list[Header]:
    return [("Authorization", f"Bearer {token}")]


@pytest.fixture
def alpha_token(alpha: Community, member: Callable[..., User]) -> str:
    return token_for(member(alpha, "researcher"), alpha)


def where(route: dict[str, Any]) -> tuple[str, str, str]:
    """Host, a path the route takes, and a client address it lets through."""
    if route["name"] == "static-assets":
        return ALPHA_HOST, "/static/kong-probe.css", CLIENT
    if route["name"] == "platform-admin":
        return "localhost", "/admin/", ADMIN_CLIENT
    samples = {entry.name: sample_path(entry) for entry in walk(settings.ROOT_URLCONF) if entry.name}
    return ALPHA_HOST, samples[route["name"].removesuffix("-write")], CLIENT


def test_every_route_takes_every_one_of_its_methods_to_the_service_and_proves_it(kong: Kong, alpha_token: str) -> None:
    double = kong()
    refused = []
    for route in routes(double):
        host, path, client = where(route)
        for method in route.get("methods") or ["GET", "POST"]:
            body = b"{}" if method in BODY_METHODS else b""
            headers = [*bearer(alpha_token), ("Content-Type", "application/json")]
            answer = double.request(method, path, host=host, headers=headers, body=body, client=client)
            if not proven(answer):
                refused.append((route["name"], method, answer.status, answer.body[:80]))

    # GET and HEAD without a body are never 411; a POST, PUT or PATCH with its length passes the size check.
    assert refused == []


def test_no_request_without_a_body_is_411_whatever_its_method(kong: Kong, alpha_token: str) -> None:
    double = kong()
    answers = {
        (route["name"], method): double.request(method, where(route)[1], host=where(route)[0], client=where(route)[2])
        for route in routes(double)
        for method in route.get("methods") or ["GET", "POST"]
    }
    # curl -X POST sends no Content-Length; neither does an HTTP/2 client with nothing to send.
    logout = double.request("POST", "/api/v1/auth/logout", host=ALPHA_HOST, headers=bearer(alpha_token))

    assert {key: answer.status for key, answer in answers.items() if answer.status == 411} == {}
    assert proven(logout)
    assert logout.status == 204


def test_a_chunked_body_needs_no_length_and_an_oversized_one_is_413(kong: Kong, alpha_token: str) -> None:
    double = kong()
    chunked = [*bearer(alpha_token), ("Transfer-Encoding", "chunked"), ("Content-Type", "application/json")]
    too_big = b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)

    accepted = double.request("POST", "/api/v1/studies/", host=ALPHA_HOST, headers=chunked, body=b"{}")
    refused = double.request("POST", "/api/v1/studies/", host=ALPHA_HOST, headers=bearer(alpha_token), body=too_big)

    assert accepted.upstream is not None
    assert accepted.upstream.header("Content-Length") == "2"  # nginx buffered the body and sends its length
    assert (refused.status, refused.json()["message"]) == (413, "Payload too large")  # nginx, before any plugin
    assert refused.seen == {}
    unlimited = kong(client_max_body_size=0)  # kong.conf's limit not set: request-size-limiting still stops it
    plugin = unlimited.request("POST", "/api/v1/studies/", host=ALPHA_HOST, headers=bearer(alpha_token), body=too_big)
    assert (plugin.status, plugin.json()["message"]) == (413, "Request size limit exceeded")


def test_a_body_without_a_length_is_stopped_at_the_limit_as_it_is_read(kong: Kong, alpha_token: str) -> None:
    chunked = [*bearer(alpha_token), ("Transfer-Encoding", "chunked"), ("Content-Type", "application/json")]
    too_big = b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)

    answer = kong().request("POST", "/api/v1/studies/", host=ALPHA_HOST, headers=chunked, body=too_big)

    assert (answer.status, answer.json()["message"]) == (413, "Payload too large")
    assert answer.upstream is None


@pytest.mark.parametrize("target", [*NORMALISED, *AS_SENT])
def test_the_signed_target_is_the_one_kong_forwards(kong: Kong, alpha_token: str, target: str) -> None:
    answer = kong().request("GET", target, host=ALPHA_HOST, headers=bearer(alpha_token))

    assert answer.upstream is not None
    assert code(answer) != "gateway_required"
    if target.startswith(("/api/v1/me", "/api/v1//", "/api/v1/.", "/api/v1/studies/..", "/api/v1/m%")):
        assert answer.status == 200
        assert answer.json()["community"] == "alpha"


def signing_the_request_uri(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration as it was: the post-function signs the target as the client sent it."""
    changed = copy.deepcopy(config)
    post_function = next(plugin for plugin in changed["services"][0]["plugins"] if plugin["name"] == "post-function")
    lua = post_function["config"]["access"][0]
    assert FORWARDED_TARGET in lua
    post_function["config"]["access"] = [
        lua.replace(FORWARDED_TARGET, "local path = kong.request.get_path_with_query()\n")
    ]
    return changed


@pytest.mark.parametrize("target", NORMALISED)
def test_signing_the_target_as_sent_would_refuse_what_kong_normalises(
    kong: Kong, deploy_config: Callable[[], dict[str, Any]], alpha_token: str, target: str
) -> None:
    double = kong(signing_the_request_uri(deploy_config()))

    answer = double.request("GET", target, host=ALPHA_HOST, headers=bearer(alpha_token))

    assert (answer.status, code(answer)) == (403, "gateway_required")


@pytest.mark.parametrize("target", AS_SENT)
def test_signing_the_target_as_sent_agrees_where_kong_forwards_it_as_sent(
    kong: Kong, deploy_config: Callable[[], dict[str, Any]], alpha_token: str, target: str
) -> None:
    answer = kong(signing_the_request_uri(deploy_config())).request(
        "GET", target, host=ALPHA_HOST, headers=bearer(alpha_token)
    )

    assert answer.status == 200


@pytest.mark.parametrize("behind", [1.0, 1.5, 2.0])
def test_a_token_issued_now_passes_kong_with_a_clock_a_little_behind(
    kong: Kong, alpha_token: str, behind: float
) -> None:
    issued_at = jwt.decode(alpha_token, options={"verify_signature": False})["iat"]
    double = kong(clock=lambda: issued_at - behind)  # Kong's clock, at the moment the token was issued

    answer = double.request("GET", "/api/v1/me", host=ALPHA_HOST, headers=bearer(alpha_token))

    assert answer.status == 200


def test_kong_sends_the_services_own_name_and_trusts_the_ca_it_was_given(
    kong: Kong, upstream_ca: str, alpha_token: str
) -> None:
    double = kong()
    service = double.config["services"][0]
    (ca_entry,) = double.config["ca_certificates"]

    answer = double.request("GET", "/api/v1/me", host=ALPHA_HOST, headers=bearer(alpha_token))

    assert service["ca_certificates"] == [ca_entry["id"]]
    assert ca_entry["cert"].strip() == upstream_ca.strip()
    assert answer.upstream is not None
    assert (answer.upstream.tls_name, answer.upstream.host) == ("gateway.internal", "gateway.internal:8443")
    assert answer.upstream.header(GATEWAY_HOST) == ALPHA_HOST
    assert answer.status == 200


def test_the_committed_file_fails_kongs_upstream_tls_check(kong: Kong) -> None:
    committed = kong(yaml.safe_load(COMMITTED.read_text()))

    answer = committed.request("GET", "/.well-known/jwks.json", host="alpha.research.example.org")  # no jwt here

    assert answer.status == 502
    assert answer.errors == ["upstream SSL certificate verify error: (20:unable to get local issuer certificate)"]


def test_with_the_clients_host_preserved_the_services_certificate_would_not_match(
    kong: Kong, deploy_config: Callable[[], dict[str, Any]]
) -> None:
    config = deploy_config()
    for route in config["services"][0]["routes"]:
        route["preserve_host"] = True

    answer = kong(config).request("GET", "/.well-known/jwks.json", host=ALPHA_HOST)

    assert answer.status == 502
    assert answer.errors == [f'upstream SSL certificate does not match "{ALPHA_HOST}"']


def test_the_client_sees_the_services_rate_limit_headers_only(
    kong: Kong, deploy_config: Callable[[], dict[str, Any]], alpha_token: str
) -> None:
    shown = deploy_config()
    limiter = next(plugin for plugin in shown["services"][0]["plugins"] if plugin["name"] == "rate-limiting")
    limiter["config"]["hide_client_headers"] = False

    hidden = kong().request("GET", "/api/v1/me", host=ALPHA_HOST, headers=bearer(alpha_token))
    doubled = kong(shown).request("GET", "/api/v1/me", host=ALPHA_HOST, headers=bearer(alpha_token))

    assert hidden.service is not None
    assert hidden.values("RateLimit-Limit") == [hidden.service["RateLimit-Limit"]]
    assert len(doubled.values("RateLimit-Limit")) == 2  # what Kong's default would show


def test_a_token_of_alpha_on_betas_host_is_refused_by_the_service(
    kong: Kong, alpha_token: str, beta: Community, member: Callable[..., User]
) -> None:
    double = kong()

    crossed = double.request("GET", "/api/v1/me", host=BETA_HOST, headers=bearer(alpha_token))
    own = double.request("GET", "/api/v1/me", host=BETA_HOST, headers=bearer(token_for(member(beta), beta)))

    assert crossed.upstream is not None  # Kong's jwt knows no community: the service decides
    assert crossed.status == 401
    assert (own.status, own.json()["community"]) == (200, "beta")


FORGED = [
    (GATEWAY_HOST, BETA_HOST),
    ("X-Gateway-Client", "198.51.100.1"),
    ("X-Gateway-Signature", "t=1,sig=forged"),
    ("X-Consumer-Username", "admin"),
    ("X-Consumer-ID", "4f0c6a3e-0000-4000-8000-000000000000"),
    ("X-Consumer-Custom-ID", "forged"),
    ("X-Consumer-Groups", "admins"),
    ("X-Credential-Identifier", "forged"),
    ("X-Anonymous-Consumer", "true"),
    ("X-Request-ID", "client-chosen-id"),
]


def test_what_only_kong_may_set_is_dropped_from_the_client(kong: Kong, alpha: Community) -> None:
    answer = kong().request("GET", "/.well-known/jwks.json", host=ALPHA_HOST, headers=FORGED)  # a route without jwt

    assert answer.upstream is not None
    after_the_pre_function = {name.lower() for name, _ in answer.seen["post-function"]}
    assert sorted(name for name, _ in FORGED if name.lower() in after_the_pre_function) == []
    assert {name.lower() for name, _ in FORGED} == {name.lower() for name in _ONLY_KONG_SETS}
    sent = {name.lower(): value for name, value in answer.upstream.headers}
    assert sent[GATEWAY_HOST.lower()] == ALPHA_HOST
    assert sent["x-gateway-client"] == CLIENT
    assert sent["x-request-id"] == answer.values("X-Kong-Request-Id")[0]
    assert not {"x-consumer-username", "x-consumer-id", "x-credential-identifier", "x-anonymous-consumer"} & set(sent)
    assert answer.status == 200


def test_a_host_header_a_client_forges_does_not_move_it_to_another_community(kong: Kong, alpha_token: str) -> None:
    forged = [*bearer(alpha_token), (GATEWAY_HOST, BETA_HOST)]

    answer = kong().request("GET", "/api/v1/me", host=ALPHA_HOST, headers=forged)

    assert (answer.status, answer.json()["community"]) == (200, "alpha")
    assert (GATEWAY_HOST, BETA_HOST) not in answer.seen["post-function"]  # the pre-function dropped it first


def test_the_request_id_is_kongs_own_even_when_a_client_spells_it_with_underscores(
    kong: Kong, alpha_token: str
) -> None:
    # nginx passes X_Request_ID on (underscores_in_headers on, nginx_kong.lua@3.9.1:30) and $http_x_request_id
    # reads it; the pre-function's clear_header matches the exact name only.
    spelled = [("X_Request_ID", "chosen-by-client-0001"), ("x_request-id", "chosen-by-client-0002")]

    answer = kong().request("GET", "/api/v1/me", host=ALPHA_HOST, headers=[*bearer(alpha_token), *spelled])

    assert answer.upstream is not None
    assert proven(answer)
    assert answer.status == 200
    assert answer.values("X-Request-ID") == answer.values("X-Kong-Request-Id")  # one id: Kong's logs, the audit's
    assert "chosen-by-client" not in answer.values("X-Request-ID")[0]


def test_gunicorn_is_pinned_to_drop_a_header_with_an_underscore() -> None:
    # Mapped, X_Request_ID joins Kong's X-Request-ID in HTTP_X_REQUEST_ID (gunicorn/http/message.py@27.0.1:273-293).
    assert gunicorn_settings.header_map == "drop"


def test_the_port_the_client_used_stays_in_absolute_links(
    kong: Kong, alpha: Community, member: Callable[..., User]
) -> None:
    token = token_for(member(alpha, "auditor"), alpha)
    double = kong()
    for _ in range(2):
        double.request("GET", "/api/v1/me", host="alpha.localhost:8443", headers=bearer(token))

    answer = double.request("GET", "/api/v1/audit/events/?limit=1", host="alpha.localhost:8443", headers=bearer(token))

    assert answer.status == 200
    assert answer.json()["next"].startswith("https://alpha.localhost:8443/api/v1/audit/events/?")


def test_a_form_posted_through_kong_on_its_port_passes_django_csrf_origin_check(kong: Kong) -> None:
    # Kong's default TLS listener is 8443 (kong/templates/kong_defaults.lua@3.9.1:27); the browser's Origin names it.
    double = kong()
    page = double.request("GET", "/admin/login/", host="localhost:8443", client=ADMIN_CLIENT)
    assert page.service is not None
    assert page.status == 200
    form_token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
    assert form_token is not None
    form = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", f"csrftoken={page.service.cookies['csrftoken'].value}"),
        ("Origin", "https://localhost:8443"),
    ]
    body = b"csrfmiddlewaretoken=" + form_token.group(1) + b"&username=nobody%40example.org&password=wrong"

    answer = double.request(
        "POST", "/admin/login/", host="localhost:8443", client=ADMIN_CLIENT, headers=form, body=body
    )

    assert answer.status == 200  # the form again, with its error: the CSRF check passed
    assert b"CSRF" not in answer.body


@pytest.mark.parametrize("host", ["localhost:x.localhost", "alpha.localhost:x.localhost"])
def test_a_host_kong_routes_as_a_community_host_is_never_served_as_another(kong: Kong, host: str) -> None:
    # Kong's router keeps a Host whole when what follows ":" is not a number (kong/router/transform.lua@3.9.1:82-92),
    # so it matches *.localhost; nginx's $host would be what comes before the ":".
    answer = kong().request("GET", "/api/schema/", host=host)

    assert answer.route == "api-schema"
    assert answer.upstream is not None
    assert answer.upstream.header(GATEWAY_HOST) == host
    assert (answer.status, code(answer)) == (400, "invalid_host")


def test_an_absolute_form_target_is_served_on_the_host_kong_routed(kong: Kong, alpha_token: str) -> None:
    # The router reads the Host header; $host is the request line's (ngx_http_request.c@release-1.25.3:1145-1168).
    answer = kong().request("GET", "https://beta.localhost/api/v1/me", host=ALPHA_HOST, headers=bearer(alpha_token))

    assert answer.upstream is not None
    assert answer.upstream.header("X-Forwarded-Host") == "beta.localhost"
    assert (answer.status, answer.json()["community"]) == (200, "alpha")


@pytest.mark.parametrize(
    ("target", "host", "forwarded_host", "upstream_target"),
    [
        ("/.well-known/jwks.json", "ALPHA.localhost", "alpha.localhost", "/.well-known/jwks.json"),  # ASCII only
        ("/.well-known/jwks.json", "\xc9.localhost", "\xc9.localhost", "/.well-known/jwks.json"),
        ("https://Alpha.localhost./.well-known/jwks.json", ALPHA_HOST, "alpha.localhost", "/.well-known/jwks.json"),
        ("/.well-known/jwks.json?x=1#part", ALPHA_HOST, "alpha.localhost", "/.well-known/jwks.json?x=1"),
    ],
)
def test_kong_forwards_host_and_query_as_nginx_parsed_them(
    kong: Kong, target: str, host: str, forwarded_host: str, upstream_target: str
) -> None:
    answer = kong().request("GET", target, host=host)

    assert answer.upstream is not None
    assert (answer.upstream.header("X-Forwarded-Host"), answer.upstream.target) == (forwarded_host, upstream_target)


def test_a_query_with_bytes_gunicorn_refuses_is_kongs_400(kong: Kong, alpha_token: str) -> None:
    answer = kong().request("GET", "/api/v1/me?q=caf\xc3\xa9", host=ALPHA_HOST, headers=bearer(alpha_token))

    assert (answer.status, answer.json()["message"]) == (400, "Percent-encode the query string")
    assert answer.upstream is None


def test_gunicorn_refuses_a_target_with_such_bytes_if_kong_sends_one(
    kong: Kong, deploy_config: Callable[[], dict[str, Any]], alpha_token: str
) -> None:
    config = deploy_config()
    post_function = next(plugin for plugin in config["services"][0]["plugins"] if plugin["name"] == "post-function")
    post_function["config"]["access"] = [
        post_function["config"]["access"][0].replace('string.find(args, "[^!-~]")', "false")
    ]

    answer = kong(config).request("GET", "/api/v1/me?q=caf\xc3\xa9", host=ALPHA_HOST, headers=bearer(alpha_token))

    assert answer.upstream is not None
    assert answer.service is None
    assert (answer.status, dict(answer.headers)["Content-Type"]) == (400, "application/problem+json")
    assert answer.json()["code"] == "malformed_http_request"
    assert "caf" not in answer.body.decode()  # the refused target is not repeated (config/gunicorn_worker.py)


ROOT = certificate_authority(name="service root CA")
INTERMEDIATE = certificate_authority(name="service intermediate CA", issuer=issuer_of("service root CA"))


@pytest.mark.parametrize(
    ("store", "presented", "failure"),
    [
        ([ROOT, INTERMEDIATE], [], None),
        ([ROOT], [INTERMEDIATE], None),  # the service sends its intermediate in the handshake
        ([INTERMEDIATE], [], "(2:unable to get issuer certificate)"),  # no partial chain
        ([ROOT], [], "(20:unable to get local issuer certificate)"),
    ],
)
def test_kong_trusts_the_service_only_through_a_chain_up_to_a_root_it_was_given(
    kong: Kong, deploy_config: Callable[[], dict[str, Any]], store: list[str], presented: list[str], failure: str | None
) -> None:
    config = deploy_config()
    config["ca_certificates"] = [{"id": f"ca-{index}", "cert": pem} for index, pem in enumerate(store)]
    config["services"][0]["ca_certificates"] = [entry["id"] for entry in config["ca_certificates"]]

    double = kong(config, service_ca=INTERMEDIATE, service_chain=presented)
    answer = double.request("GET", "/.well-known/jwks.json", host=ALPHA_HOST)

    if failure is None:
        assert answer.status == 200
    else:
        assert answer.status == 502
        assert answer.errors == [f"upstream SSL certificate verify error: {failure}"]


def test_without_the_secret_the_signer_fails_closed_with_one_clear_line(kong: Kong, alpha_token: str) -> None:
    answer = kong(env={}).request("GET", "/api/v1/me", host=ALPHA_HOST, headers=bearer(alpha_token))

    assert (answer.status, answer.json()["message"]) == (500, "An unexpected error occurred")
    assert answer.upstream is None
    assert answer.errors == ["gateway signature: KONG_GATEWAY_PROXY_SECRET is not set"]


def test_without_the_hmac_module_the_signer_fails_closed_and_never_logs_the_secret(
    kong: Kong, alpha_token: str
) -> None:
    answer = kong(sandbox_requires=()).request("GET", "/api/v1/me", host=ALPHA_HOST, headers=bearer(alpha_token))

    assert answer.status == 500
    assert answer.upstream is None
    assert len(answer.errors) == 1
    assert "KONG_UNTRUSTED_LUA_SANDBOX_REQUIRES" in answer.errors[0]
    assert "traceback" not in answer.errors[0]
    assert GATEWAY_SECRET not in answer.errors[0]


def test_the_admin_is_hidden_from_other_addresses_with_a_plain_404(kong: Kong) -> None:
    double = kong()

    outside = double.request("GET", "/admin/", host="localhost", client="198.51.100.1")
    inside = double.request("GET", "/admin/", host="localhost", client=ADMIN_CLIENT)

    assert (outside.status, outside.json()["message"]) == (404, "Not Found")
    assert "198.51.100.1" not in outside.body.decode()
    assert inside.upstream is not None
    assert code(inside) != "gateway_required"


NO_ROUTE = "no Route matched with those values"


@pytest.mark.parametrize(
    ("method", "target", "host", "scheme", "status", "message"),
    [
        ("GET", "/api/v2/me", ALPHA_HOST, "https", 404, NO_ROUTE),
        ("GET", "/api/v1/me", "alpha.example.org", "https", 404, NO_ROUTE),
        ("OPTIONS", "/api/v1/me", ALPHA_HOST, "https", 404, NO_ROUTE),  # the service serves no OPTIONS (405)
        ("GET", "/api/v1/me", ALPHA_HOST, "http", 426, "Please use HTTPS protocol"),
        ("GET", "/api/v1/me", ALPHA_HOST, "https", 401, "Unauthorized"),
    ],
)
def test_kong_answers_itself_with_its_own_messages(
    kong: Kong, method: str, target: str, host: str, scheme: str, status: int, message: str
) -> None:
    answer = kong().request(method, target, host=host, scheme=scheme)

    assert (answer.status, answer.json()["message"]) == (status, message)
    assert answer.upstream is None


def test_kongs_jwt_refuses_an_unknown_key_a_bad_signature_and_an_expired_token(
    kong: Kong, alpha_token: str, alpha: Community, member: Callable[..., User]
) -> None:
    double = kong()
    header, claims, _ = alpha_token.split(".")
    someone_elses = token_for(member(alpha), alpha).split(".")[2]

    def ask(double: KongDouble, token: str) -> tuple[int, Any]:
        answer = double.request("GET", "/api/v1/me", host=ALPHA_HOST, headers=bearer(token))
        return answer.status, answer.json()

    without_keys = kong({**double.config, "consumers": [{"username": "gateway-token-issuer"}]})
    later = kong(clock=lambda: time.time() + settings.ACCESS_TOKEN_TTL_SECONDS + 5)
    assert ask(without_keys, alpha_token) == (401, {"message": "No credentials found for given 'kid'"})
    assert ask(double, f"{header}.{claims}.{someone_elses}") == (401, {"message": "Invalid signature"})
    assert ask(double, "not-a-token") == (401, {"message": "Bad token; invalid JSON"})
    assert ask(later, alpha_token) == (401, {"exp": "token expired"})
