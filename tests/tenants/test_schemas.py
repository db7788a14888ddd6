"""A community's schema made from the migrations' recorded statements is the schema Django's ``migrate`` makes."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from tenants.lifecycle import community_create
from tenants.models import Community
from tenants.schemas import TEMPLATE_PREFIX, forget_recording
from tests.support.catalog import schema_catalog


def migrated_by_django(slug: str) -> None:
    """A community whose schema django-tenants creates by running every migration (its own path)."""
    Community(slug=slug, schema_name=slug, name=slug, status_changed_at=timezone.now()).save(verbosity=0)


def test_a_created_schema_is_identical_to_a_migrated_one(db: None) -> None:
    forget_recording()  # recorded in this test, from the migrations as they are now
    community_create(slug="gamma", name="Gamma", domain="gamma.localhost", actor_id="operator:test")
    migrated_by_django("delta")

    created, migrated = schema_catalog("gamma"), schema_catalog("delta")

    assert created["relations"], "the catalog query found nothing"
    assert created["triggers"]
    assert created["functions"]
    assert created["sequences"]
    for kind in migrated:
        assert created[kind] == migrated[kind], kind
    assert "gateway_service" in repr(created["relations"])  # the service's grants are part of what is compared


def test_creating_a_community_runs_no_migration_once_recorded(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    community_create(slug="gamma", name="Gamma", domain="gamma.localhost", actor_id="operator:test")

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("Django's migrate ran for a new community")

    monkeypatch.setattr("django_tenants.migration_executors.base.run_migrations", refuse)
    monkeypatch.setattr("tenants.migrating.run_migrations", refuse)
    community_create(slug="delta", name="Delta", domain="delta.localhost", actor_id="operator:test")

    assert schema_catalog("delta") == schema_catalog("gamma")


def test_the_recording_leaves_no_schema_behind(db: None) -> None:
    forget_recording()
    community_create(slug="gamma", name="Gamma", domain="gamma.localhost", actor_id="operator:test")

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE %s", [TEMPLATE_PREFIX + "%"])
        assert cursor.fetchone() == (0,)
