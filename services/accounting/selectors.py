"""Reads of the accounting: the accounting of one participant, requests, copies, suspensions, recorded disclosures.

:func:`accounting_entries` is the one builder: the platform's accesses
(:func:`security.audit.disclosures.disclosures`, with the basis of each from
:mod:`services.accounting.basis`) and the disclosures recorded off the platform,
oldest first. An accounting *provided* also withholds the disclosures to an
agency whose suspension is in force at that moment, and may summarise repeated
disclosures (164.528(b)(3)).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from security.audit.disclosures import BasisKind, Category, accounting_since, disclosures, participants_disclosed
from security.audit.hashing import format_time
from security.models import AffiliationKind
from services.accounting.basis import access_bases
from services.accounting.models import AccountingRequest, RecordedDisclosure, Suspension
from services.common import access_one
from services.participants.models import Participant


def recorded_entry(disclosure: RecordedDisclosure) -> dict[str, Any]:
    """A disclosure recorded off the platform, as an entry of the accounting."""
    return {
        "date": format_time(disclosure.disclosed_at),
        "source": "recorded",
        "category": Category.DISCLOSURE.value,
        "recipient": {
            "user_id": "",
            "email": "",
            "name": disclosure.recipient_name,
            "organisation": disclosure.recipient_organisation,
            "address": disclosure.recipient_address,
            "roles": [],
            "affiliation": AffiliationKind.EXTERNAL.value,
        },
        "description": disclosure.description,
        "redacted": False,
        "purpose": "",
        "purpose_statement": disclosure.purpose_statement,
        "basis": {"kind": "recorded", "reference": str(disclosure.pk)},
        "break_glass": False,
        "audit_sequence": None,
    }


def accounting_entries(
    participant: Participant,
    *,
    now: datetime | None = None,
    since: datetime | None = None,
    include_exempt: bool = False,
) -> list[dict[str, Any]]:
    """Every entry of the participant's accounting up to ``now``, platform and recorded, oldest first."""
    moment = now or timezone.now()
    start = max(accounting_since(moment), since) if since else accounting_since(moment)
    platform = disclosures(
        participant.pseudonym, now=now, since=since, basis=access_bases, include_exempt=include_exempt
    )
    recorded = RecordedDisclosure.objects.filter(participant=participant, disclosed_at__gte=start)
    if now is not None:
        recorded = recorded.filter(disclosed_at__lte=now)
    entries = platform + [recorded_entry(disclosure) for disclosure in recorded]
    return sorted(entries, key=lambda entry: str(entry["date"]))


def suspended_agencies(at: datetime) -> frozenset[str]:
    """The agencies (case-folded) whose suspension is in force at ``at``."""
    agencies = Suspension.objects.filter(starts_at__lte=at, ends_at__gt=at).values_list("agency", flat=True)
    return frozenset(agency.casefold() for agency in agencies)


def without_suspended(entries: Sequence[dict[str, Any]], at: datetime) -> list[dict[str, Any]]:
    """``entries`` less the disclosures to an agency under a suspension in force at ``at`` (164.528(a)(2))."""
    agencies = suspended_agencies(at)
    return [entry for entry in entries if entry["recipient"]["organisation"].casefold() not in agencies]


def summarised(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Repeated disclosures to one recipient for one purpose as one entry (164.528(b)(3)).

    The first in full, with ``frequency`` (how many) and ``last_date`` (the date of the last).
    """
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for entry in entries:
        recipient = entry["recipient"]
        key = (recipient["user_id"], recipient["name"], recipient["organisation"], entry["purpose_statement"])
        first = groups.get(key)
        if first is None:
            groups[key] = {**entry, "frequency": 1, "last_date": entry["date"]}
        else:
            first["frequency"] += 1
            first["last_date"] = entry["date"]
    return list(groups.values())


# 164.528(b)(4): research under a waiver (164.512(i)) that involved this many individuals may be summarised.
RESEARCH_SUMMARY_MINIMUM = 50
MAY_OR_MAY_NOT = "Your protected health information may or may not have been disclosed for this research protocol."


def research_summarised(
    entries: Sequence[dict[str, Any]], participant: Participant, *, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The entries less those under the study's waiver, and the (b)(4) summary that stands for them.

    Only when the study runs under a waiver of authorization and its
    participants disclosed in the accounting period number 50 or more
    (counted from the audit events); otherwise the entries as they are.
    """
    study = participant.study
    waived = [entry for entry in entries if entry["basis"]["kind"] == BasisKind.IRB_WAIVER]
    if not waived or not study.irb_waiver_number:
        return list(entries), []
    pseudonyms = list(Participant.objects.filter(study=study).values_list("pseudonym", flat=True))
    if participants_disclosed(pseudonyms, since=accounting_since(now)) < RESEARCH_SUMMARY_MINIMUM:
        return list(entries), []
    summary = {
        "protocol": f"{study.title} ({study.protocol_number})",
        "purpose_and_selection_criteria": study.research_purpose,
        "phi_types": study.phi_types,
        "waiver": {
            "approval": study.irb_waiver_number,
            "date": study.irb_waiver_date.isoformat() if study.irb_waiver_date else "",
        },
        "date_range": {"from": waived[0]["date"], "to": waived[-1]["date"]},
        "sponsor": {"name": study.sponsor_name, "address": study.sponsor_address, "phone": study.sponsor_phone},
        "researcher": {
            "name": study.researcher_name,
            "address": study.researcher_address,
            "phone": study.researcher_phone,
        },
        "statement": MAY_OR_MAY_NOT,
    }
    return [entry for entry in entries if entry["basis"]["kind"] != BasisKind.IRB_WAIVER], [summary]


def access_accounting_request(*, request_id: Any, action: str, for_update: bool = False) -> AccountingRequest:
    """One accounting request of this community (locked when ``for_update``), or the audited 404."""
    rows = AccountingRequest.objects.select_related("participant")
    if for_update:
        rows = rows.select_for_update(of=("self",))
    return access_one(rows, request_id, action=action, resource_type="accounting_request", what="accounting request")


def accounting_requests(*, status: str | None = None) -> QuerySet[AccountingRequest]:
    """The community's accounting requests, by status."""
    rows = AccountingRequest.objects.select_related("participant", "copy").order_by("created_at", "id")
    return rows.filter(status=status) if status else rows


def suspensions() -> QuerySet[Suspension]:
    """Every suspension on record."""
    return Suspension.objects.order_by("created_at", "id")


def recorded_disclosures(*, participant: Participant) -> QuerySet[RecordedDisclosure]:
    """The disclosures recorded off the platform for ``participant``."""
    return RecordedDisclosure.objects.filter(participant=participant).order_by("created_at", "id")
