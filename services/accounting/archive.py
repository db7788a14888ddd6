"""What an offboarding archive keeps of the accounting (164.528(d), 164.530(j)): entries and the records behind them.

The audit app seals a community's trail before its schema is dropped
(:mod:`security.audit.archives`), and calls :func:`archived_accounting`
through the ``AUDIT_ARCHIVE_ACCOUNTING`` hook (security does not import the
research apps). It gets back, for every participant the log names or an
officer recorded a disclosure of, the whole accounting with the basis of each
entry (exempt ones included and labelled), and the accounting's own records:
the requests with their clock, each copy provided (its exact text and
SHA-256), the suspensions and the disclosures recorded off the platform.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db.models import F

from security.audit.disclosures import disclosures
from services.accounting.models import AccountingRequest, ProvidedAccounting, RecordedDisclosure, Suspension
from services.accounting.selectors import accounting_entries
from services.participants.models import Participant

RECORDS_TYPE = "audit-archive-accounting-records/v1"


def _rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(row) for row in rows]


def _with_pseudonym(model: type[AccountingRequest] | type[RecordedDisclosure]) -> list[dict[str, Any]]:
    rows = model.objects.order_by("pk").annotate(pseudonym=F("participant__pseudonym")).values()
    return _rows(rows)


def archived_records() -> dict[str, Any]:
    """The accounting's records of this community, row by row (values as stored)."""
    return {
        "type": RECORDS_TYPE,
        "requests": _with_pseudonym(AccountingRequest),
        "copies": _rows(ProvidedAccounting.objects.order_by("provided_at", "pk").values()),
        "suspensions": _rows(Suspension.objects.order_by("starts_at", "pk").values()),
        "recorded_disclosures": _with_pseudonym(RecordedDisclosure),
    }


def archived_accounting(
    pseudonyms: Sequence[str], *, now: datetime
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """Each participant's whole accounting up to ``now`` (exempt entries labelled), and the records.

    Args:
        pseudonyms: The participants the audit log names; those with a recorded
            disclosure only are added.
        now: The archive's time: nothing after it is listed.
    """
    recorded = RecordedDisclosure.objects.values_list("participant__pseudonym", flat=True)
    wanted = sorted(set(pseudonyms) | set(recorded))
    participants = {row.pseudonym: row for row in Participant.objects.filter(pseudonym__in=wanted)}
    accounting = {pseudonym: _entries(participants.get(pseudonym), pseudonym, now=now) for pseudonym in wanted}
    return accounting, archived_records()


def _entries(participant: Participant | None, pseudonym: str, *, now: datetime) -> list[dict[str, Any]]:
    if participant is None:  # named in the log but no longer a row here: the log's entries alone
        return disclosures(pseudonym, now=now)
    return accounting_entries(participant, now=now, include_exempt=True)
