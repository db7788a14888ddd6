"""Forwarded headers count only from a configured proxy that signs its requests; forgeries are ignored."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from gateway.proxy import sign
from security.models import User
from tenants.models import Community
from tests.support.clients import ALPHA_HOST, BETA_HOST
from tests.support.tokens import token_for

SECRET = "s" * 48
KONG = "10.20.0.5"
TRUSTED = {"TRUSTED_PROXIES": ["10.20.0.0/24"], "PROXY_SHARED_SECRET": SECRET}


def through_kong(
    path: str,
    *,
    request_id: str = "0b8a7c6d-1e2f-4a5b-9c8d-7e6f5a4b3c2d",
    client: str = "203.0.113.50",
    host: str = ALPHA_HOST,
    age: int = 0,
    secret: str = SECRET,
    address: str = KONG,
    **headers: Any,
) -> dict[str, Any]:
    """What Kong adds: the client's host signed in X-Gateway-Host (its Host is its upstream's name, see below)."""
    signature = sign(
        secret=secret,
        timestamp=int(time.time()) - age,
        method="GET",
        host=host,
        path=path,
        request_id=request_id,
        client=client,
    )
    return {
        "REMOTE_ADDR": address,
        "HTTP_X_GATEWAY_HOST": host,
        "HTTP_X_REQUEST_ID": request_id,
        "HTTP_X_GATEWAY_CLIENT": client,
        "HTTP_X_GATEWAY_SIGNATURE": signature,
        **headers,
    }


@override_settings(**TRUSTED, RATE_LIMIT_IP_BURST=2, RATE_LIMIT_PER_IP=60)
def test_a_signed_request_from_the_gateway_is_limited_by_the_real_client(alpha: Community) -> None:
    client = APIClient(HTTP_HOST=ALPHA_HOST)
    statuses = [
        client.get(
            "/api/v1/me",
            **through_kong("/api/v1/me", request_id=f"req-{n:08d}", client=f"203.0.113.{n}"),
        ).status_code
        for n in range(4)
    ]

    # Four different clients behind one gateway address: none of them is limited.
    assert statuses == [401, 401, 401, 401]


@override_settings(**TRUSTED)
def test_the_gateways_request_id_is_kept(alpha: Community) -> None:
    response = APIClient(HTTP_HOST=ALPHA_HOST).get("/api/v1/me", **through_kong("/api/v1/me"))

    assert response["X-Request-ID"] == "0b8a7c6d-1e2f-4a5b-9c8d-7e6f5a4b3c2d"


@pytest.mark.parametrize(
    "forgery",
    [
        {"address": "198.51.100.66"},  # signed, but not from a gateway address
        {"secret": "x" * 48},  # from the gateway's address, wrong secret
        {"age": 120},  # too old
    ],
)
@override_settings(**TRUSTED, RATE_LIMIT_IP_BURST=2, RATE_LIMIT_PER_IP=60)
def test_forged_forwarded_headers_are_ignored(forgery: dict[str, Any], alpha: Community) -> None:
    client = APIClient(HTTP_HOST=ALPHA_HOST)
    answers = [
        client.get(
            "/api/v1/me",
            **through_kong(
                "/api/v1/me",
                request_id=f"req-{n:08d}",
                HTTP_X_FORWARDED_FOR=f"203.0.113.{n}",
                HTTP_X_CONSUMER_USERNAME="admin",
                **forgery,
            ),
        )
        for n in range(3)
    ]

    # X-Forwarded-For ignored: all three count against the one peer address.
    assert [answer.status_code for answer in answers] == [401, 401, 429]
    assert answers[0]["X-Request-ID"] != "req-00000000"


@override_settings(**TRUSTED)
def test_a_replayed_signature_is_not_trusted_twice(alpha: Community) -> None:
    headers = through_kong("/api/v1/me")
    client = APIClient(HTTP_HOST=ALPHA_HOST)

    first = client.get("/api/v1/me", **headers)
    second = client.get("/api/v1/me", **headers)

    assert first["X-Request-ID"] == headers["HTTP_X_REQUEST_ID"]
    assert second["X-Request-ID"] != headers["HTTP_X_REQUEST_ID"]


@override_settings(**TRUSTED, REQUIRE_GATEWAY=True)
def test_with_the_gateway_required_a_direct_request_is_refused(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    direct = client_for(ALPHA_HOST).get("/api/v1/me")

    assert direct.status_code == 403
    assert direct.json()["code"] == "gateway_required"
    assert client_for(ALPHA_HOST).get("/health/live").status_code == 200
    assert APIClient(HTTP_HOST=ALPHA_HOST).get("/api/v1/me", **through_kong("/api/v1/me")).status_code == 401


@override_settings(**TRUSTED, REDIS_URL="redis://127.0.0.1:1/0", REQUIRE_GATEWAY=True)
def test_without_redis_no_signature_can_be_checked_for_replay_so_none_is_trusted(alpha: Community) -> None:
    response = APIClient(HTTP_HOST=ALPHA_HOST).get("/health/live", **through_kong("/health/live"))

    assert response.status_code == 200
    assert response["X-Request-ID"] != "0b8a7c6d-1e2f-4a5b-9c8d-7e6f5a4b3c2d"


@override_settings(**TRUSTED)
def test_a_gateway_on_an_ipv4_mapped_address_is_still_the_gateway(alpha: Community) -> None:
    response = APIClient(HTTP_HOST=ALPHA_HOST).get("/api/v1/me", **through_kong("/api/v1/me", address=f"::ffff:{KONG}"))

    assert response["X-Request-ID"] == "0b8a7c6d-1e2f-4a5b-9c8d-7e6f5a4b3c2d"


@override_settings(**TRUSTED)
def test_a_client_address_that_was_not_signed_is_not_believed(alpha: Community) -> None:
    headers = through_kong("/api/v1/me", client="203.0.113.50")
    headers["HTTP_X_GATEWAY_CLIENT"] = "198.51.100.1"  # altered after Kong signed it

    response = APIClient(HTTP_HOST=ALPHA_HOST).get("/api/v1/me", **headers)

    assert response["X-Request-ID"] != headers["HTTP_X_REQUEST_ID"]


@override_settings(**TRUSTED, REDIS_URL="redis://127.0.0.1:1/0", REQUIRE_GATEWAY=True)
def test_with_the_gateway_required_and_redis_down_the_answer_is_503(alpha: Community) -> None:
    response = APIClient(HTTP_HOST=ALPHA_HOST).get("/api/v1/me", **through_kong("/api/v1/me"))

    assert response.status_code == 503
    assert response.json()["code"] == "proxy_check_unavailable"


@override_settings(**TRUSTED, REQUIRE_GATEWAY=True)
def test_refusals_carry_the_security_headers_and_a_request_id(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    refused = client_for(ALPHA_HOST).get("/api/v1/me")

    assert refused.status_code == 403
    assert "default-src 'none'" in refused["Content-Security-Policy"]
    assert refused["X-Content-Type-Options"] == "nosniff"
    assert len(refused["X-Request-ID"]) == 32


@override_settings(**TRUSTED)
def test_a_signature_header_that_is_not_ascii_is_simply_not_trusted(alpha: Community) -> None:
    headers = through_kong("/api/v1/me")
    stamp = headers["HTTP_X_GATEWAY_SIGNATURE"].split(",")[0]
    headers["HTTP_X_GATEWAY_SIGNATURE"] = f"{stamp},sig=caf\u00e9"  # a Latin-1 byte, as WSGI decodes headers

    response = APIClient(HTTP_HOST=ALPHA_HOST).get("/api/v1/me", **headers)

    assert response.status_code == 401  # no token: the request went on, unproven, and did not crash
    assert response["X-Request-ID"] != headers["HTTP_X_REQUEST_ID"]


def me(headers: dict[str, Any], token: str) -> tuple[int, Any]:
    response = APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token}", **headers)
    return response.status_code, response.json()


@override_settings(**TRUSTED, REQUIRE_GATEWAY=True)
def test_a_proven_request_is_served_on_the_host_kong_signed(alpha: Community, member: Callable[..., User]) -> None:
    as_kong_sends_it = through_kong("/api/v1/me") | {"HTTP_HOST": "gateway.internal:8443"}  # its upstream's name

    status, body = me(as_kong_sends_it, token_for(member(alpha), alpha))

    # The signed X-Gateway-Host took the place of Kong's upstream name.
    assert (status, body["community"]) == (200, "alpha")


@override_settings(**TRUSTED, REQUIRE_GATEWAY=True)
def test_a_host_kong_did_not_sign_does_not_count(
    alpha: Community, beta: Community, member: Callable[..., User]
) -> None:
    headers = through_kong("/api/v1/me", host=ALPHA_HOST) | {"HTTP_HOST": "gateway.internal:8443"}
    headers["HTTP_X_GATEWAY_HOST"] = BETA_HOST  # changed after Kong signed

    status, body = me(headers, token_for(member(beta), beta))

    assert (status, body["code"]) == (403, "gateway_required")


@pytest.mark.parametrize(
    "forgery",
    [
        {"address": "198.51.100.66"},  # not from a gateway address
        {"secret": "x" * 48},  # from the gateway's address, wrong secret
    ],
)
@override_settings(**TRUSTED)
def test_a_forged_gateway_host_never_reaches_another_community(
    forgery: dict[str, Any], alpha: Community, beta: Community, member: Callable[..., User]
) -> None:
    headers = through_kong("/api/v1/me", host=BETA_HOST, **forgery) | {"HTTP_HOST": ALPHA_HOST}

    beta_caller = me(headers, token_for(member(beta), beta))
    alpha_caller = me(headers, token_for(member(alpha), alpha))

    assert beta_caller[0] == 401  # served as alpha, where beta's token is no good
    assert (alpha_caller[0], alpha_caller[1]["community"]) == (200, "alpha")


@override_settings(**TRUSTED, REQUIRE_GATEWAY=True)
def test_a_signed_host_the_service_does_not_allow_is_refused(alpha: Community) -> None:
    response = APIClient().get("/api/v1/me", **through_kong("/api/v1/me", host="intruder.example.net"))

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_host"


@override_settings(**TRUSTED, REQUIRE_GATEWAY=True, SECURE_SSL_REDIRECT=True)
def test_a_redirect_to_https_names_the_host_kong_signed(alpha: Community) -> None:
    as_kong_sends_it = through_kong("/api/v1/me", host="alpha.localhost:8443") | {"HTTP_HOST": "gateway.internal:8443"}

    response = APIClient().get("/api/v1/me", secure=False, **as_kong_sends_it)

    # SecurityMiddleware reads the host after ProxyTrustMiddleware put the signed one back, port and all.
    assert response.status_code == 301
    assert response["Location"] == "https://alpha.localhost:8443/api/v1/me"
