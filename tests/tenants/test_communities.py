"""Community lifecycle: creation with a validated slug, commands, suspension, host resolution."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DataError, IntegrityError, connection, transaction
from django_tenants.utils import schema_exists
from rest_framework.test import APIClient

from security.models import User
from tenants.lifecycle import community_create, community_resume, community_suspend
from tenants.models import Community, Domain
from tests.support.clients import ALPHA_HOST, bearer
from tests.support.tokens import token_for


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_community_creates_a_migrated_schema_and_its_domain(db: None) -> None:
    output = run("create_community", "--slug", "gamma_lab", "--name", "Gamma Lab", "--domain", "Gamma.Localhost")

    assert output.strip() == "created community gamma_lab (Gamma Lab) at gamma.localhost"
    community = Community.objects.get(slug="gamma_lab")
    assert community.schema_name == "gamma_lab"
    assert community.status == "active"
    assert Domain.objects.get(tenant=community).domain == "gamma.localhost"
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('gamma_lab.studies_study') IS NOT NULL")
        assert cursor.fetchone() == (True,)


HOSTILE_SLUGS = [
    'x"; DROP SCHEMA public CASCADE; --',
    "al'pha",
    "pg_x",
    "pg_catalog",
    "public",
    "information_schema",
    "a" * 64,
    "a" * 41,
    "ab",
    "Alpha",
    "1alpha",
    "alpha-beta",
    "älpha",
    "alpha\x00",
    "",
]


@pytest.mark.parametrize("slug", HOSTILE_SLUGS)
def test_hostile_slugs_are_refused_and_create_no_schema(slug: str, db: None) -> None:
    schemas_before = _schemas()

    with pytest.raises(CommandError, match="invalid_slug"):
        run("create_community", "--slug", slug, "--name", "Hostile", "--domain", "hostile.localhost")

    assert _schemas() == schemas_before
    assert not Community.objects.filter(name="Hostile").exists()
    assert not Domain.objects.filter(domain="hostile.localhost").exists()


def _schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace")
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.parametrize("slug", ["x'y", "pg_evil", "public", "a" * 41, "gamma"])
def test_the_database_refuses_unsafe_slugs_whatever_the_code_path(slug: str, alpha: Community) -> None:
    # "gamma" is a safe slug, but the schema name must equal it.
    with pytest.raises((IntegrityError, DataError)), transaction.atomic():
        Community.objects.filter(pk=alpha.pk).update(slug=slug, schema_name=slug if slug != "gamma" else "alpha")


def test_a_duplicate_slug_is_one_line_and_creates_nothing(alpha: Community) -> None:
    with pytest.raises(CommandError) as error:
        run("create_community", "--slug", "alpha", "--name", "Again", "--domain", "again.localhost")

    assert str(error.value) == "a community with slug 'alpha' already exists (slug_taken)"
    assert not Domain.objects.filter(domain="again.localhost").exists()


def test_a_taken_domain_is_one_line_and_creates_nothing(alpha: Community) -> None:
    schemas_before = _schemas()

    with pytest.raises(CommandError) as error:
        run("create_community", "--slug", "delta", "--name", "Delta", "--domain", ALPHA_HOST)

    assert str(error.value) == "domain 'alpha.localhost' is already taken (domain_taken)"
    assert not Community.objects.filter(slug="delta").exists()
    assert _schemas() == schemas_before


def test_a_leftover_schema_is_never_adopted(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA leftover")

    with pytest.raises(CommandError, match="schema named 'leftover' already exists"):
        run("create_community", "--slug", "leftover", "--name", "Leftover", "--domain", "leftover.localhost")


@pytest.mark.parametrize(
    "domain", ["localhost", "127.0.0.1", "no_underscores.localhost", "-bad.localhost", "a b.localhost"]
)
def test_bad_or_platform_domains_are_refused(domain: str, db: None) -> None:
    with pytest.raises(CommandError, match="invalid_domain"):
        run("create_community", "--slug", "epsilon", "--name", "Epsilon", f"--domain={domain}")

    assert not schema_exists("epsilon")


def test_a_bad_name_is_refused(db: None) -> None:
    with pytest.raises(CommandError, match="invalid_name"):
        run("create_community", "--slug", "zeta", "--name", "  ", "--domain", "zeta.localhost")


def test_list_communities_shows_slug_status_and_domain(alpha: Community, beta: Community) -> None:
    lines = run("list_communities").splitlines()

    assert lines[0].split() == ["SLUG", "STATUS", "DOMAINS", "NAME"]
    assert lines[1].split()[:3] == ["alpha", "active", "alpha.localhost"]
    assert lines[2].split()[:3] == ["beta", "active", "beta.localhost"]


def test_a_suspended_community_refuses_every_api_request_until_resumed(
    alpha: Community,
    member: Callable[..., User],
    client_for: Callable[[str], APIClient],
) -> None:
    user = member(alpha, "owner")
    token = token_for(user, alpha)

    assert run("suspend_community", "--slug", "alpha").strip() == "community alpha is suspended"

    for response in (
        bearer(client_for(ALPHA_HOST), token).get("/api/v1/me"),
        client_for(ALPHA_HOST).post("/api/v1/auth/token", {"email": user.email, "password": "x"}, format="json"),
        client_for(ALPHA_HOST).get("/api/v1/does-not-exist"),
    ):
        assert response.status_code == 403
        assert response.json()["code"] == "community_suspended"
    # Probes still answer, and other communities are untouched.
    assert client_for(ALPHA_HOST).get("/health/live").status_code == 200

    assert run("resume_community", "--slug", "alpha").strip() == "community alpha is active"
    assert bearer(client_for(ALPHA_HOST), token).get("/api/v1/me").status_code == 200


def test_suspending_twice_is_harmless_and_resuming_an_active_one_too(alpha: Community) -> None:
    community_suspend(slug="alpha", actor_id="operator:test")
    assert community_suspend(slug="alpha", actor_id="operator:test").status == "suspended"
    community_resume(slug="alpha", actor_id="operator:test")
    assert community_resume(slug="alpha", actor_id="operator:test").status == "active"


def test_an_offboarded_community_cannot_be_resumed_and_is_not_served(
    alpha: Community, client_for: Callable[[str], APIClient]
) -> None:
    Community.objects.filter(pk=alpha.pk).update(status="offboarded")

    with pytest.raises(CommandError, match="invalid_status_transition"):
        run("resume_community", "--slug", "alpha")
    assert client_for(ALPHA_HOST).get("/api/v1/me").status_code == 404


def test_suspending_an_unknown_community_is_a_clear_error(db: None) -> None:
    with pytest.raises(CommandError, match="no community with slug 'nosuch'"):
        run("suspend_community", "--slug", "nosuch")


def test_an_unknown_host_is_a_404_problem(client_for: Callable[[str], APIClient], db: None) -> None:
    response = client_for("nosuch.localhost").get("/api/v1/me")

    assert response.status_code == 404
    assert response.json()["code"] == "unknown_community"


def test_a_host_outside_allowed_hosts_is_a_400_problem(client_for: Callable[[str], APIClient], db: None) -> None:
    response = client_for("evil.example.com").get("/health/live")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_host"


def test_creating_a_community_through_the_action_validates_too(db: None) -> None:
    with pytest.raises(Exception, match="reserved"):
        community_create(slug="pg_toast_x", name="X", domain="x.localhost", actor_id="operator:test")
