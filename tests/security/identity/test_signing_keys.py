"""Signing keys: rotation without logging anyone out, the JWKS, unsafe key files."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from django.core.management import call_command
from django.test import override_settings
from rest_framework.test import APIClient

from security.identity.signing_keys import (
    SigningKeyError,
    generate_signing_key,
    load_keyring,
    prune_signing_keys,
    reset_keyring_cache,
)
from security.models import User
from tenants.models import Community
from tests.support.clients import ALPHA_HOST, bearer
from tests.support.tokens import token_for


@pytest.fixture
def key_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "keys"
    generate_signing_key(directory, now=time.time() - 10)
    with override_settings(JWT_SIGNING_KEYS_DIR=directory):
        reset_keyring_cache()
        yield directory
    reset_keyring_cache()


def test_rotation_logs_nobody_out_and_new_tokens_use_the_new_key(
    key_dir: Path,
    alpha: Community,
    member: Callable[..., User],
    client_for: Callable[[str], APIClient],
) -> None:
    user = member(alpha)
    before = token_for(user, alpha)

    call_command("rotate_signing_key", stdout=io.StringIO())

    after = token_for(user, alpha)
    assert jwt.get_unverified_header(before)["kid"] != jwt.get_unverified_header(after)["kid"]
    assert bearer(client_for(ALPHA_HOST), before).get("/api/v1/me").status_code == 200
    assert bearer(client_for(ALPHA_HOST), after).get("/api/v1/me").status_code == 200
    kids = [key["kid"] for key in client_for(ALPHA_HOST).get("/.well-known/jwks.json").json()["keys"]]
    assert kids == [jwt.get_unverified_header(after)["kid"], jwt.get_unverified_header(before)["kid"]]


def test_a_superseded_key_retires_once_its_tokens_have_expired(key_dir: Path) -> None:
    old = load_keyring(key_dir).active()
    new = generate_signing_key(key_dir, now=time.time())
    retention = 3600 + 30 + 30  # lifetime + leeway + keyring reload interval

    assert [key.kid for key in load_keyring(key_dir).verification_keys(time.time() + retention - 5)] == [
        old.kid,
        new.kid,
    ]
    assert [key.kid for key in load_keyring(key_dir).verification_keys(time.time() + retention + 5)] == [new.kid]
    assert prune_signing_keys(key_dir, now=time.time() + retention + 5) == [old.kid]
    assert [key.kid for key in load_keyring(key_dir).keys] == [new.kid]


def test_the_jwks_publishes_public_keys_only(key_dir: Path, client_for: Callable[[str], APIClient], db: None) -> None:
    response = client_for("localhost").get("/.well-known/jwks.json")

    assert response.status_code == 200
    (key,) = response.json()["keys"]
    assert set(key) == {"kty", "crv", "x", "kid", "use", "alg"}
    assert key["alg"] == "EdDSA"


def test_a_key_file_readable_by_others_is_refused(key_dir: Path) -> None:
    (path,) = key_dir.glob("*.pem")
    path.chmod(0o644)

    with pytest.raises(SigningKeyError, match="0600"):
        load_keyring(key_dir)


def test_a_key_file_whose_name_does_not_match_its_key_is_refused(key_dir: Path) -> None:
    (path,) = key_dir.glob("*.pem")
    path.rename(key_dir / f"{int(time.time())}-someoneelseskid.pem")

    with pytest.raises(SigningKeyError, match="does not match"):
        load_keyring(key_dir)


def test_without_any_signing_key_sign_in_is_503(
    tmp_path: Path, alpha: Community, member: Callable[..., User], client_for: Callable[[str], APIClient]
) -> None:
    user = member(alpha)
    with override_settings(JWT_SIGNING_KEYS_DIR=tmp_path / "empty"):
        reset_keyring_cache()
        response = client_for(ALPHA_HOST).post(
            "/api/v1/auth/token", {"email": user.email, "password": "correct horse battery staple 42"}, format="json"
        )

    assert response.status_code == 503
    assert response.json()["code"] == "signing_key_unavailable"


def test_rotate_signing_key_if_missing_creates_only_the_first_key(tmp_path: Path, capsys: Any, db: None) -> None:
    with override_settings(JWT_SIGNING_KEYS_DIR=tmp_path / "fresh"):
        call_command("rotate_signing_key", "--if-missing")
        call_command("rotate_signing_key", "--if-missing")
        assert len(load_keyring(tmp_path / "fresh").keys) == 1
        assert oct((next((tmp_path / "fresh").glob("*.pem"))).stat().st_mode & 0o777) == "0o600"
    assert "signing key present" in capsys.readouterr().out
