"""The token matrix: every way a bearer token can be wrong is the same 401.

Tokens are forged with PyJWT from the test keyring's own key (so that only the
one property under test is wrong) or from keys an attacker could hold.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from security.identity.signing_keys import current_keyring, generate_signing_key, reset_keyring_cache
from security.identity.tokens import issue_access_token
from security.models import AuthSession, User
from tenants.models import Community
from tests.factories import MembershipFactory
from tests.support.clients import ALPHA_HOST, BETA_HOST, bearer
from tests.support.tokens import token_for

GENERIC_DETAIL = "The access token is missing, invalid, expired or revoked."


def live_session(user: User) -> str:
    """The id of a real session of ``user`` (a token naming no session is refused, whatever else is right)."""
    alpha = Community.objects.get(slug="alpha")
    return str(AuthSession.objects.create(user=user, community=alpha, amr=["pwd"], auth_time=timezone.now()).pk)


def claims_for(user: User, community: str = "alpha", **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "sub": str(user.pk),
        "community": community,
        "roles": ["researcher"],
        "amr": ["pwd"],
        "auth_time": now,
        "sid": live_session(user),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "test-jti",
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def sign(claims: dict[str, Any], *, key: Any = None, headers: dict[str, Any] | None = None, alg: str = "EdDSA") -> str:
    active = current_keyring().active()
    header = {"kid": active.kid, "typ": "at+jwt", **(headers or {})}
    return jwt.encode(claims, key if key is not None else active.private_key, algorithm=alg, headers=header)


def unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    kid = current_keyring().active().kid
    return f"{part({'alg': 'none', 'typ': 'at+jwt', 'kid': kid})}.{part(claims)}."


def call_me(client_for: Callable[[str], APIClient], token: str, host: str = ALPHA_HOST) -> Any:
    return bearer(client_for(host), token).get("/api/v1/me")


@pytest.fixture
def researcher(alpha: Community, member: Callable[..., User]) -> User:
    return member(alpha, "researcher")


def test_a_well_formed_token_is_accepted(researcher: User, client_for: Callable[[str], APIClient]) -> None:
    response = call_me(client_for, sign(claims_for(researcher)))

    assert response.status_code == 200
    assert response.json()["user_id"] == str(researcher.pk)


def forged_tokens(user: User) -> dict[str, str]:
    """One token per failure the matrix names, each wrong in exactly one way."""
    attacker_key = Ed25519PrivateKey.generate()
    public_pem = (
        current_keyring()
        .active()
        .public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    good = claims_for(user)
    tampered = sign(good).rsplit(".", 1)
    return {
        "expired": sign(
            claims_for(user, iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200, exp=int(time.time()) - 3600)
        ),
        "bad signature": tampered[0] + "." + tampered[1][::-1],
        "signed by another key with our kid": sign(good, key=attacker_key),
        "alg none": unsigned(good),
        "HS256 keyed with our public key": _hs256_with_public_key(good, public_pem),
        "unknown kid": sign(good, headers={"kid": "no-such-key"}),
        "missing kid": _without_kid(good),
        "wrong audience": sign(claims_for(user, aud="urn:somebody-else")),
        "wrong issuer": sign(claims_for(user, iss="https://evil.example")),
        "other community": sign(claims_for(user, community="beta")),
        "not yet valid": sign(claims_for(user, nbf=int(time.time()) + 3600)),
        "wrong type header": sign(good, headers={"typ": "JWT"}),
        "missing jti": sign(claims_for(user, jti=None)),
        "roles not a list": sign(claims_for(user, roles="owner")),
        "jku pointing at an attacker's keys": sign(
            good, key=attacker_key, headers={"jku": "https://attacker.example/jwks.json", "kid": "attacker"}
        ),
        "embedded jwk header": sign(
            good,
            key=attacker_key,
            headers={"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}, "kid": current_keyring().active().kid},
        ),
        "unknown user": sign(claims_for(user, sub="00000000-0000-0000-0000-000000000000")),
        "subject not a user id": sign(claims_for(user, sub="owner@alpha.example")),
        "garbage": "not-a-jwt",
    }


def _hs256_with_public_key(claims: dict[str, Any], public_pem: bytes) -> str:
    """The classic algorithm-confusion forgery, built by hand (PyJWT refuses to build it)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"alg": "HS256", "typ": "at+jwt", "kid": current_keyring().active().kid}
    signing_input = part(json.dumps(header).encode()) + "." + part(json.dumps(claims).encode())
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + part(signature)


def _without_kid(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, current_keyring().active().private_key, algorithm="EdDSA", headers={"typ": "at+jwt"})


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "bad signature",
        "signed by another key with our kid",
        "alg none",
        "HS256 keyed with our public key",
        "unknown kid",
        "missing kid",
        "wrong audience",
        "wrong issuer",
        "other community",
        "not yet valid",
        "wrong type header",
        "missing jti",
        "roles not a list",
        "jku pointing at an attacker's keys",
        "embedded jwk header",
        "unknown user",
        "subject not a user id",
        "garbage",
    ],
)
def test_every_bad_token_is_the_same_401(case: str, researcher: User, client_for: Callable[[str], APIClient]) -> None:
    response = call_me(client_for, forged_tokens(researcher)[case])

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"].startswith("Bearer")
    body = response.json()
    assert body["code"] == "invalid_token"
    assert body["detail"] == GENERIC_DETAIL


def test_alphas_token_on_betas_host_is_401(
    alpha: Community,
    beta: Community,
    member: Callable[..., User],
    client_for: Callable[[str], APIClient],
) -> None:
    user = member(alpha, "owner")
    # The same person is a member of beta too: the token still only opens alpha.
    MembershipFactory.create(user=user, community=beta, role="owner")
    token = token_for(user, alpha)

    assert call_me(client_for, token, ALPHA_HOST).status_code == 200
    response = call_me(client_for, token, BETA_HOST)
    assert response.status_code == 401
    assert response.json()["detail"] == GENERIC_DETAIL


def test_a_token_is_refused_on_the_platform_host(researcher: User, client_for: Callable[[str], APIClient]) -> None:
    # The platform host has no /api/v1/me at all: tokens open nothing there.
    assert call_me(client_for, sign(claims_for(researcher)), "localhost").status_code == 404


def test_a_member_removed_from_the_community_loses_access_at_once(
    researcher: User, alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    token = sign(claims_for(researcher))
    researcher.memberships.filter(community=alpha).delete()

    assert call_me(client_for, token).status_code == 401


def test_a_deactivated_user_loses_access_at_once(researcher: User, client_for: Callable[[str], APIClient]) -> None:
    token = sign(claims_for(researcher))
    researcher.is_active = False
    researcher.save()

    assert call_me(client_for, token).status_code == 401


def test_roles_come_from_the_membership_not_the_token(researcher: User, client_for: Callable[[str], APIClient]) -> None:
    response = call_me(client_for, sign(claims_for(researcher, roles=["owner", "auditor"])))

    assert response.json()["roles"] == ["researcher"]


def test_expiry_allows_the_configured_leeway_and_no_more(
    researcher: User, client_for: Callable[[str], APIClient]
) -> None:
    token = issue_access_token(
        subject=str(researcher.pk),
        community="alpha",
        roles=["researcher"],
        amr=["pwd"],
        auth_time=int(time.time()),
        session_id=live_session(researcher),
    )
    expires = time.time() + settings.ACCESS_TOKEN_TTL_SECONDS
    with time_machine.travel(expires + settings.JWT_LEEWAY_SECONDS - 5, tick=False):
        assert call_me(client_for, token).status_code == 200
    with time_machine.travel(expires + settings.JWT_LEEWAY_SECONDS + 5, tick=False):
        assert call_me(client_for, token).status_code == 401


def test_an_access_token_lives_one_hour(
    researcher: User, alpha: Community, login: Callable[..., dict[str, Any]]
) -> None:
    body = login(ALPHA_HOST, researcher)
    claims = jwt.decode(body["access"], options={"verify_signature": False})

    assert body["expires_in"] == 3600
    assert claims["exp"] - claims["iat"] == 3600
    assert set(claims) == {
        "iss",
        "aud",
        "sub",
        "community",
        "roles",
        "amr",
        "auth_time",
        "sid",
        "iat",
        "nbf",
        "exp",
        "jti",
    }
    assert jwt.get_unverified_header(body["access"])["alg"] == "EdDSA"


def test_a_malformed_authorization_header_is_401(researcher: User, client_for: Callable[[str], APIClient]) -> None:
    client = client_for(ALPHA_HOST)
    client.credentials(HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")

    assert client.get("/api/v1/me").status_code == 401


def test_no_token_is_401_asking_for_one(client_for: Callable[[str], APIClient], alpha: Community) -> None:
    response = client_for(ALPHA_HOST).get("/api/v1/me")

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
@pytest.mark.usefixtures("limiter_elsewhere")
def test_revocation_store_down_fails_closed_with_503(researcher: User, client_for: Callable[[str], APIClient]) -> None:
    response = call_me(client_for, sign(claims_for(researcher)))

    assert response.status_code == 503
    assert response.json()["code"] == "revocation_unavailable"


def test_a_token_naming_no_session_is_refused(researcher: User, client_for: Callable[[str], APIClient]) -> None:
    # Signed with our key and right in every other way: only a sign-in leaves a session behind.
    token = sign(claims_for(researcher, sid="00000000-0000-0000-0000-000000000001"))

    assert call_me(client_for, token).status_code == 401


def test_an_access_token_stops_when_its_session_reaches_its_maximum_age(
    researcher: User, client_for: Callable[[str], APIClient]
) -> None:
    signed_in = int(time.time()) - settings.SESSION_MAX_AGE_SECONDS - 1
    token = sign(claims_for(researcher, auth_time=signed_in))  # issued just now, so unexpired

    response = call_me(client_for, token)

    assert response.status_code == 401
    assert response.json()["detail"] == GENERIC_DETAIL


# --- a token in use: verified once, its lifetime, key, audience and community every time -----------------


def test_a_token_in_use_is_verified_once_and_its_lifetime_checked_every_time(
    researcher: User, client_for: Callable[[str], APIClient]
) -> None:
    claims = claims_for(researcher)
    token = sign(claims)
    with mock.patch("security.identity.tokens.jwt.decode", wraps=jwt.decode) as decode:
        answers = [call_me(client_for, token).status_code for _ in range(3)]
        with time_machine.travel(claims["exp"] + settings.JWT_LEEWAY_SECONDS + 1, tick=False):
            expired = call_me(client_for, token)

    assert answers == [200, 200, 200]
    assert decode.call_count == 1
    assert expired.status_code == 401


def test_a_tampered_copy_of_a_token_in_use_is_refused(researcher: User, client_for: Callable[[str], APIClient]) -> None:
    token = sign(claims_for(researcher))
    header, payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    elevated = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    elevated["roles"] = ["owner"]
    rewritten = base64.urlsafe_b64encode(json.dumps(elevated).encode()).rstrip(b"=").decode()

    assert call_me(client_for, token).status_code == 200
    assert call_me(client_for, f"{header}.{payload}.{flipped}").status_code == 401
    assert call_me(client_for, f"{header}.{rewritten}.{signature}").status_code == 401


def test_a_token_in_use_stops_when_its_key_leaves_the_keyring(
    researcher: User, client_for: Callable[[str], APIClient], tmp_path: Path
) -> None:
    token = sign(claims_for(researcher))
    assert call_me(client_for, token).status_code == 200

    generate_signing_key(tmp_path)  # another keyring, without the key the token was signed with
    with override_settings(JWT_SIGNING_KEYS_DIR=tmp_path):
        reset_keyring_cache()
        try:
            response = call_me(client_for, token)
        finally:
            reset_keyring_cache()

    assert response.status_code == 401


def test_a_token_in_use_is_checked_again_when_the_audience_or_issuer_changes(
    researcher: User, client_for: Callable[[str], APIClient]
) -> None:
    token = sign(claims_for(researcher))
    assert call_me(client_for, token).status_code == 200

    with override_settings(JWT_AUDIENCE="another-audience"):
        other_audience = call_me(client_for, token).status_code
    with override_settings(JWT_ISSUER="https://another-issuer.example"):
        other_issuer = call_me(client_for, token).status_code

    assert (other_audience, other_issuer) == (401, 401)
