"""Fixtures shared by the whole suite.

The test database is real PostgreSQL; communities ``alpha`` and ``beta`` (two
schemas) are created once per session and every test runs in a transaction
that is rolled back. Redis is real too (its own database, flushed before every
test that uses the database or asks for ``clean_redis``); pure tests need neither.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test.utils import setup_databases
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from core.ratelimit import Verdict
from core.redis import get_redis
from core.schema import use_public_schema
from security.audit.checkpoints import published_keys
from security.identity.mfa import totp_enrollment_begin, totp_enrollment_confirm
from security.identity.signing_keys import generate_signing_key, load_keyring, reset_keyring_cache
from security.models import User
from tenants.lifecycle import community_create
from tenants.models import Community
from tests.factories import DEFAULT_PASSWORD, MembershipFactory, UserFactory
from tests.support import contract
from tests.support.clients import ALPHA_HOST, BETA_HOST, COMMUNITIES, MemberClient, bearer, client_on
from tests.support.parallel import worker_environment, worker_index
from tests.support.roles import ensure_service_role
from tests.support.tokens import MFA_AMR, PASSWORD_AMR, token_for
from vault.keys import cache as data_key_cache
from vault.keys import community_keys_create
from vault.models import DataKey
from vault.providers import get_provider

# The shipped Vault policy's use across the session (the Vault fixtures feed it).
pytest_plugins = ["tests.support.vault_policy"]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_newgateway(gateway: Any) -> None:
    """A new xdist worker process: give it Redis databases, a key file and a state directory of its own.

    It runs before the worker starts pytest, so the worker's Django settings read them
    (see tests/support/parallel.py); the test database is pytest-django's ``_gwN`` one.
    """
    variables = {**worker_environment(dict(os.environ), worker_index(gateway.id)), "TEST_STORES_OF": gateway.id}
    gateway.remote_exec(f"import os\nos.environ.update({variables!r})").waitclose()


@pytest.fixture(scope="session", autouse=True)
def _responses_match_the_schema() -> None:
    """Every response to a documented operation is one the OpenAPI schema documents (tests/support/contract.py)."""
    contract.install()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """Before the test database is set up: the service's role must exist for migrations to grant it privileges."""
    ensure_service_role()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> None:
    """Create the two communities (schemas included) once for the whole session."""
    with django_db_blocker.unblock():
        if not connection.settings_dict["NAME"].startswith("test_"):
            # Only tests that commit for real were collected (none asks for ``db``), so
            # pytest-django set no database up: set up the test database all the same.
            setup_databases(verbosity=0, interactive=False, keepdb=True, aliases={"default": {}})
        for slug, name, domain in COMMUNITIES:
            if not Community.objects.filter(slug=slug).exists():
                community_create(slug=slug, name=name, domain=domain, actor_id="operator:test")
                continue
            # A reused test database: fresh keys, in step with this run's key file.
            with schema_context(slug):
                DataKey.objects.all().delete()
                get_provider().destroy_community_key(slug)
                community_keys_create(slug)
    if not load_keyring(settings.JWT_SIGNING_KEYS_DIR).keys:
        generate_signing_key(settings.JWT_SIGNING_KEYS_DIR)


# A test that asks for one of these uses the database, so Redis and the key file too.
DATABASE_FIXTURES = frozenset(
    {"db", "transactional_db", "django_db_setup", "django_db_reset_sequences", "django_db_serialized_rollback"}
)


@pytest.fixture
def clean_redis() -> redis.Redis:
    """The test Redis database, emptied: for a test that uses Redis and not the database (those get it anyway)."""
    client = get_redis()
    client.flushdb()
    return client


@pytest.fixture(autouse=True)
def _clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with the public schema and empty in-process caches (keyring, data keys, published keys).

    A test that uses the database also starts with an empty Redis database, and gets
    the local key provider's file back as it was. A pure test touches neither, so it
    runs without Redis; one that uses Redis alone asks for ``clean_redis``.
    """
    marked = request.node.get_closest_marker("django_db") is not None
    uses_database = marked or bool(DATABASE_FIXTURES & set(request.fixturenames))
    if uses_database:
        request.getfixturevalue("clean_redis")
        empty_witness()
    reset_keyring_cache()
    data_key_cache.purge()
    published_keys.clear()
    # The local key provider's file is not rolled back with the database: restore it by hand.
    key_file = Path(settings.LOCAL_KEY_FILE)
    saved_keys = key_file.read_bytes() if uses_database and key_file.exists() else None
    yield
    use_public_schema()
    reset_keyring_cache()
    data_key_cache.purge()
    published_keys.clear()
    if saved_keys is not None:
        key_file.write_bytes(saved_keys)
    if uses_database:
        empty_witness()


def empty_witness() -> None:
    """The witness directory is not rolled back with the database either: empty it around every database test."""
    root = Path(settings.AUDIT_WITNESS_DIR)
    if root.is_dir():
        shutil.rmtree(root)
    root.mkdir(mode=0o700)


@pytest.fixture
def alpha(db: None) -> Community:
    """Community alpha."""
    return Community.objects.get(slug="alpha")


@pytest.fixture
def beta(db: None) -> Community:
    """Community beta."""
    return Community.objects.get(slug="beta")


@pytest.fixture
def client_for() -> Callable[[str], APIClient]:
    """An API client that sends requests to the given host."""

    return client_on


@pytest.fixture
def member(db: None) -> Callable[..., User]:
    """Create a user with a role in a community."""

    def make(community: Community, role: str = "researcher", **user_fields: Any) -> User:
        user = UserFactory.create(**user_fields)
        MembershipFactory.create(user=user, community=community, role=role)
        return user

    return make


@pytest.fixture
def login(client_for: Callable[[str], APIClient]) -> Callable[..., dict[str, Any]]:
    """Sign in over HTTP on a host and return the token response body (asserting 200).

    For tests whose subject is the sign-in (or what only a sign-in leaves: its audit
    event, a refresh token); any other test takes a token from ``token_for``.
    """

    def sign_in(host: str, user: User, password: str = DEFAULT_PASSWORD, **extra: str) -> dict[str, Any]:
        response = client_for(host).post(
            "/api/v1/auth/token", {"email": user.email, "password": password, **extra}, format="json"
        )
        assert response.status_code == 200, response.content
        body: dict[str, Any] = response.json()
        return body

    return sign_in


@pytest.fixture
def member_client(alpha: Community, beta: Community, member: Callable[..., User]) -> MemberClient:
    """A new member with ``role`` of alpha (or ``on_beta``) and a token, with TOTP enrolled too when ``second_factor``.

    The token comes from :func:`~tests.support.tokens.token_for` (a real session, no HTTP
    sign-in); with ``second_factor`` its ``amr`` says the second factor was used, as a
    sign-in with a TOTP code would have said.
    """

    def make(role: str, *, second_factor: bool = False, on_beta: bool = False) -> tuple[APIClient, User]:
        community, host = (beta, BETA_HOST) if on_beta else (alpha, ALPHA_HOST)
        user = member(community, role)
        if second_factor:
            seed = parse_qs(urlsplit(totp_enrollment_begin(user=user).provisioning_uri).query)["secret"][0]
            totp_enrollment_confirm(user=user, code=pyotp.TOTP(seed).at(time.time() - 30))
        token = token_for(user, community, amr=MFA_AMR if second_factor else PASSWORD_AMR)
        return bearer(client_on(host), token), user

    return make


@pytest.fixture
def limiter_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """The address and user limiters answer from a store that is up, so a test can take the others' Redis down."""
    verdict = Verdict(allowed=True, limit=200, remaining=199, retry_after_seconds=0, reset_seconds=0, policy="test")
    monkeypatch.setattr("gateway.ratelimit.check", lambda *args, **kwargs: verdict)
    monkeypatch.setattr("security.identity.throttle.check", lambda *args, **kwargs: verdict)
