"""Accounting of disclosures (45 CFR 164.528): every disclosure of one participant's PHI, six years back.

A disclosure here is an allowed access that revealed the participant's PHI:
an action of the policy's one list of PHI-revealing actions
(``phi_actions`` in the policy data, which also carries each description),
for a purpose the policy does not exempt (``exempt_purposes``: health care
operations, which the policy grants no role for PHI). An access under an
emergency (break-glass) grant is always listed, whatever purpose was stated.
Each entry gives the date, the recipient (the user and their roles at the
time), a brief description and the purpose, and points back to its audit
event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from policy.matrix import policy_matrix
from security.audit.formats import csv_row, spreadsheet_safe
from security.audit.hashing import format_time
from security.audit.models import AuditEvent, Outcome
from security.audit.sequencer import audit_chain
from security.models import User

CSV_COLUMNS = ("date", "recipient", "recipient_roles", "description", "purpose", "break_glass", "audit_sequence")


def accounting_since(now: datetime | None = None) -> datetime:
    """The start of the accounting period."""
    return (now or timezone.now()) - timedelta(days=settings.DISCLOSURE_LOOKBACK_DAYS)


def disclosures(pseudonym: str, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """The accounting for the participant known by ``pseudonym``, oldest first (staged events chained first)."""
    audit_chain()
    matrix = policy_matrix()
    events = (
        AuditEvent.objects.filter(
            participant_pseudonyms__contains=[pseudonym],
            outcome=Outcome.ALLOW,
            action__in=list(matrix.phi_actions),
            occurred_at__gte=accounting_since(now),
        )
        # Both conditions: an emergency access is listed whatever purpose the client stated.
        .exclude(purpose__in=matrix.exempt_purposes, break_glass=False)
        .order_by("sequence")
        .values("sequence", "occurred_at", "staged_at", "actor_id", "actor_roles", "action", "purpose", "break_glass")
    )
    rows = list(events)
    users = User.objects.filter(pk__in={row["actor_id"] for row in rows if _is_uuid(row["actor_id"])})
    emails = {str(pk): email for pk, email in users.values_list("pk", "email")}
    return [
        {
            "date": format_time(_access_time(row)),
            "recipient": {
                "user_id": row["actor_id"],
                "email": emails.get(row["actor_id"], ""),
                "roles": row["actor_roles"],
            },
            "description": matrix.phi_actions[row["action"]]
            + (" under emergency (break-glass) access" if row["break_glass"] else ""),
            "purpose": row["purpose"],
            "break_glass": row["break_glass"],
            "audit_sequence": row["sequence"],
        }
        for row in rows
    ]


def _access_time(row: Mapping[str, Any]) -> datetime:
    """When the access happened: its request's time as the database staged it, or the earlier time the event states.

    (The chain's own time is when the event entered it, normally just after; events
    from before the two were kept apart have that one only.)
    """
    occurred: datetime = row["occurred_at"]
    staged: datetime | None = row["staged_at"]
    return occurred if staged is None else min(occurred, staged)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def disclosures_csv(entries: list[dict[str, Any]]) -> Iterator[str]:
    """The accounting as CSV lines (a header first)."""
    yield csv_row(CSV_COLUMNS)
    for entry in entries:
        yield csv_row(_csv_cells(entry))


def _csv_cells(entry: dict[str, Any]) -> list[str]:
    recipient = entry["recipient"]
    cells = [
        entry["date"],
        recipient["email"] or recipient["user_id"],
        " ".join(recipient["roles"]),
        entry["description"],
        entry["purpose"],
        "yes" if entry["break_glass"] else "no",
        str(entry["audit_sequence"]),
    ]
    return [spreadsheet_safe(cell) for cell in cells]
