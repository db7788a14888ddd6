"""Reading the platform's and a community's audit log in tests, after chaining what was staged."""

from __future__ import annotations

from django_tenants.utils import schema_context

from security.audit.models import AuditEvent
from tests.support.audit import chained_events


def log_events(schema: str, **filters: object) -> list[AuditEvent]:
    """``schema``'s chained events matching ``filters`` (``public`` is the platform log), in sequence order."""
    with schema_context(schema):
        return list(chained_events().filter(**filters).order_by("sequence"))


def platform_events(**filters: object) -> list[AuditEvent]:
    """The platform log's chained events matching ``filters``."""
    return log_events("public", **filters)


def last_sequence(schema: str) -> int:
    """The sequence of ``schema``'s newest chained event (0 for none): count only what comes after it."""
    events = log_events(schema)
    return events[-1].sequence if events else 0
