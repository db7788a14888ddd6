"""Migrations stay backward-compatible across one release (expand/contract), checked by django-migration-linter.

Blue and green run side by side on one database, so the release that is live must keep working on the schema the
new release migrates to. The linter (6.0.0, a development dependency) refuses what breaks the old code: dropping or
renaming a column or table, adding ``NOT NULL`` without a database default, altering a column in place. The
migrations that existed when the check was introduced are a committed baseline (``deploy/migrations-baseline.txt``,
``app_label.name`` a line), judged as accepted; every migration not in it is linted.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connection
from django_tenants.utils import get_public_schema_name

BASELINE = Path(settings.BASE_DIR) / "deploy" / "migrations-baseline.txt"
# A schema name only: sqlmigrate writes SQL, it runs none.
_TENANT_CONTEXT = "migrations_lint"
_PROJECT_PACKAGES = ("config", "core", "tenants", "security", "gateway", "services", "policy", "vault")


def project_apps() -> list[str]:
    """The labels of the project's own apps (third-party migrations are their maintainers' business)."""
    return [app.label for app in apps.get_app_configs() if app.name.split(".")[0] in _PROJECT_PACKAGES]


def read_baseline(path: Path = BASELINE) -> set[tuple[str, str]]:
    """The accepted migrations, as (app label, name)."""
    if not path.exists():
        return set()
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return {tuple(line.split(".", 1)) for line in lines if line and not line.startswith("#")}  # type: ignore[misc]


def all_migrations() -> list[tuple[str, str]]:
    """Every migration of the project's apps on disk."""
    from django.db.migrations.loader import MigrationLoader  # noqa: PLC0415 - needs the app registry

    labels = set(project_apps())
    return sorted(key for key in MigrationLoader(None, ignore_no_migrations=True).disk_migrations if key[0] in labels)


def write_baseline(path: Path = BASELINE) -> int:
    """Record every current migration as accepted; returns how many."""
    keys = all_migrations()
    header = "# Accepted before the expand/contract check (gateway/migrations_compat.py). Do not add to it.\n"
    path.write_text(header + "".join(f"{app}.{name}\n" for app, name in keys), encoding="utf-8")
    return len(keys)


def lint(*, baseline: Iterable[tuple[str, str]] | None = None, quiet: bool = True) -> tuple[int, int]:
    """Lint the migrations outside the baseline; returns (erroneous, linted)."""
    from django_migration_linter import MigrationLinter  # noqa: PLC0415 - a development dependency

    accepted = set(read_baseline() if baseline is None else baseline)

    class BaselineLinter(MigrationLinter):
        def _gather_all_migrations(self, migrations_list: Any = None) -> Iterable[Any]:
            for migration in super()._gather_all_migrations(migrations_list):
                if (migration.app_label, migration.name) not in accepted:
                    yield migration

    erroneous, linted = 0, 0
    # django-tenants' router lets sqlmigrate emit a shared app's SQL only on the public schema and a tenant app's
    # only in a community's: linted once per context, or every tenant app's migration would pass unseen.
    for schema in (get_public_schema_name(), _TENANT_CONTEXT):
        connection.set_schema(schema)  # type: ignore[attr-defined]  # django-tenants' backend
        try:
            linter = BaselineLinter(
                path=str(settings.BASE_DIR),
                include_apps=project_apps(),
                no_cache=True,
                quiet=["ok", "ignore"] if quiet else [],
                analyser_string="postgresql",  # the service's backend (tenants.backend) is PostgreSQL's
            )
            linter.lint_all_migrations()
        finally:
            connection.set_schema_to_public()  # type: ignore[attr-defined]
        erroneous, linted = erroneous + linter.nb_erroneous, max(linted, linter.nb_total)
    return erroneous, linted
