"""``manage.py migrate`` with many communities: those at the latest state are skipped, the rest migrated in parallel.

A skipped community is one whose schema ``migrate`` never opens: no
``SET search_path`` names it. A community that fails does not stop the others,
and a rerun takes up only what is left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from core.schema import use_public_schema
from tenants.lifecycle import community_create
from tenants.models import Community
from tests.support.roles import as_service_role
from vault.providers import get_provider

LEAF = ("exports", "0003_build_attempt_storage_key")
# Sorted first, so that a migration of the communities one after another would stop at it.
BROKEN, BEHIND = "mig_a_broken", "mig_b_behind"


class SchemaOpenings:
    """The schemas this process's connection set its search path to."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().upper().startswith("SET SEARCH_PATH"):
            self.statements.append(sql)
        return execute(sql, params, many, context)

    def opened(self, schema: str) -> bool:
        return any(f"'{schema}'" in sql or f'"{schema}"' in sql or f" {schema}" in sql for sql in self.statements)


def recorded(schema: str) -> set[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT app, name FROM "{schema}".django_migrations')  # noqa: S608  # test constants
        return {(str(app), str(name)) for app, name in cursor.fetchall()}


def forget(schema: str, migration: tuple[str, str]) -> None:
    """Remove ``migration``'s row alone: its changes stay, so running it again fails."""
    with connection.cursor() as cursor:
        cursor.execute(f'DELETE FROM "{schema}".django_migrations WHERE app = %s AND name = %s', list(migration))  # noqa: S608


def test_nothing_pending_opens_no_community_schema(db: None, capsys: pytest.CaptureFixture[str]) -> None:
    openings = SchemaOpenings()

    with connection.execute_wrapper(openings):
        call_command("migrate", verbosity=1)

    assert not openings.opened("alpha")
    assert not openings.opened("beta")
    assert "at the latest state: 2, to migrate: 0" in capsys.readouterr().out


def test_a_community_missing_a_migration_is_migrated_and_the_other_is_not_opened(db: None) -> None:
    call_command("migrate", *LEAF[:1], "0002", schema_name="alpha", verbosity=0)  # alpha one migration behind
    assert LEAF not in recorded("alpha")
    openings = SchemaOpenings()

    with connection.execute_wrapper(openings):
        call_command("migrate", verbosity=0)

    assert LEAF in recorded("alpha")
    assert openings.opened("alpha")
    assert not openings.opened("beta")


def test_a_skipped_community_missing_a_grant_is_granted_again(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute('REVOKE SELECT ON alpha.studies_study FROM "gateway_service"')

    call_command("migrate", verbosity=0)

    with as_service_role(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM alpha.studies_study")
        assert cursor.fetchone() is not None


@pytest.fixture
def broken_and_behind(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Two committed communities: one whose last migration's row is gone (rerunning it fails), one behind by it."""
    with django_db_blocker.unblock():
        for slug in (BROKEN, BEHIND):
            community_create(slug=slug, name=slug, domain=f"{slug.replace('_', '-')}.localhost", actor_id="operator:t")
        forget(BROKEN, LEAF)
        call_command("migrate", LEAF[0], "0002", schema_name=BEHIND, verbosity=0)
        try:
            yield
        finally:
            use_public_schema()
            for community in Community.objects.filter(slug__in=(BROKEN, BEHIND)):
                community._drop_schema(force_drop=True)
                community.delete()
                get_provider().destroy_community_key(community.slug)


def test_a_failing_community_does_not_stop_the_others_and_the_run_fails(
    broken_and_behind: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(CommandError, match=f"1 of 2 communities failed to migrate .*: {BROKEN}$"):
        call_command("migrate", parallel=2, verbosity=1)

    assert LEAF in recorded(BEHIND)
    assert LEAF not in recorded(BROKEN)
    output = capsys.readouterr()
    assert f"{BROKEN}: FAILED: " in output.err
    assert f"{BEHIND}: migrated" in output.out


def test_a_rerun_takes_up_only_what_is_left(broken_and_behind: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CommandError):
        call_command("migrate", parallel=2, verbosity=1)
    capsys.readouterr()

    with pytest.raises(CommandError, match="1 of 1 communities failed"):
        call_command("migrate", parallel=2, verbosity=1)

    output = capsys.readouterr()
    assert "at the latest state: 3, to migrate: 1" in output.out
    assert BEHIND not in output.out + output.err
