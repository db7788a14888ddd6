"""The database refuses a staged row that staging would not write, naming the first field at fault.

Whoever holds the service's database role (an operator, a compromised
process) can insert into ``audit_pendingevent`` directly; the trigger
(``audit_stage_check()``, migration 0008) refuses anything but an entry of
exactly staging's shape, so nothing that could jam or forge the chain gets
in. Each rule is tried here on its own, in both communities' schemas, from one
well-formed entry that staging itself wrote.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django_tenants.utils import schema_context

from security.audit.staging import audit_append
from tenants.models import Community

GUARDS = importlib.import_module("security.audit.migrations.0006_database_guards_without_session_settings")
TEXT_LIMITS: dict[str, int] = GUARDS.TEXT_LIMITS
LISTS: dict[str, int] = GUARDS.LISTS

Change = Callable[[dict[str, Any]], Any]
NOT_AN_ENTRY = "not a staged audit entry"


def _set(name: str, value: Any) -> Change:
    return lambda entry: {**entry, name: value}


def _faults() -> dict[str, tuple[Change, str]]:
    """Each way a row can be wrong, and the field the refusal must name."""
    faults: dict[str, tuple[Change, str]] = {
        "not an object": (lambda entry: [entry], NOT_AN_ENTRY),
        "a field missing": (lambda entry: {k: v for k, v in entry.items() if k != "purpose"}, NOT_AN_ENTRY),
        "a field added": (_set("given_name", "Ada"), NOT_AN_ENTRY),
        "outcome": (_set("outcome", "maybe"), "outcome, break_glass or http_status"),
        "break_glass": (_set("break_glass", "no"), "outcome, break_glass or http_status"),
        "http_status a string": (_set("http_status", "200"), "outcome, break_glass or http_status"),
        "http_status out of range": (_set("http_status", 70000), "http_status"),
        "http_status a fraction": (_set("http_status", 200.5), "http_status"),
        "occurred_at": (_set("occurred_at", 12), "occurred_at"),
    }
    for name, limit in TEXT_LIMITS.items():
        faults[f"{name} not a string"] = (_set(name, 7), name)
        faults[f"{name} too long"] = (_set(name, "x" * (limit + 1)), name)
    for name, limit in LISTS.items():
        faults[f"{name} not a list"] = (_set(name, "x"), name)
        faults[f"{name} with a number"] = (_set(name, ["x", 1]), name)
        faults[f"{name} with an item too long"] = (_set(name, ["x" * (limit + 1)]), name)
    return faults


FAULTS = _faults()


def staged_entry() -> dict[str, Any]:
    """A staged row as staging writes it (taken from the table, then removed with the savepoint)."""
    with transaction.atomic():
        audit_append(action="participant.read", resource_type="participant", resource_id="p-1")
        with connection.cursor() as cursor:
            cursor.execute("SELECT entry FROM audit_pendingevent ORDER BY id DESC LIMIT 1")
            entry: dict[str, Any] = json.loads(cursor.fetchone()[0])
        transaction.set_rollback(True)
    return entry


def insert(entry: Any) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("INSERT INTO audit_pendingevent (entry) VALUES (%s)", [json.dumps(entry)])


@pytest.mark.parametrize("slug", ["alpha", "beta"])
@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
def test_a_row_wrong_in_one_way_is_refused_naming_what_is_wrong(
    fault: str, slug: str, alpha: Community, beta: Community
) -> None:
    change, named = FAULTS[fault]
    with schema_context(slug):
        entry = staged_entry()
        message = named if named == NOT_AN_ENTRY else f"staged audit entry: {named}"
        with pytest.raises(DatabaseError, match=f"^{re.escape(message)}(\n|$)"):
            insert(change(entry))


@pytest.mark.parametrize("slug", ["alpha", "beta"])
def test_the_row_staging_writes_goes_in_stamped_with_the_databases_clock(
    slug: str, alpha: Community, beta: Community
) -> None:
    with schema_context(slug):
        entry = staged_entry()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO audit_pendingevent (entry, staged_at) VALUES (%s, '2099-01-01') "
                "RETURNING staged_at <= clock_timestamp()",
                [json.dumps(entry)],
            )
            assert cursor.fetchone()[0] is True
            transaction.set_rollback(True)
