"""Reads of the accounting: the accounting of one participant, requests, copies, suspensions, recorded disclosures.

:func:`accounting_entries` is the one builder: the platform's accesses
(:func:`security.audit.disclosures.disclosures`, with the basis of each from
:mod:`services.accounting.basis`) and the disclosures recorded off the platform,
oldest first. An accounting *provided* also withholds the disclosures to an
agency whose suspension is in force at that moment, and may summarise repeated
disclosures (164.528(b)(3)).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from core.schema import tenant_connection
from security.affiliations import affiliation_history
from security.audit.disclosures import BasisKind, Category, accesses_among, accounting_since, disclosures
from security.audit.hashing import format_time
from security.audit.models import AuditEvent
from security.audit.sequencer import audit_chain
from security.models import AffiliationKind
from services.accounting.basis import access_bases, bases_by_participant
from services.accounting.models import AccountingRequest, RecordedDisclosure, Suspension
from services.common import access_one
from services.participants.models import Participant
from services.studies.models import Study
from tenants.models import Community


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
    received: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every entry of the participant's accounting up to ``now``, platform and recorded, oldest first.

    The six years run back from ``received`` (the request's receipt) when given, else from ``now``.
    """
    start = period_start(received=received or now or timezone.now(), since=since)
    platform = disclosures(
        participant.pseudonym,
        now=now,
        since=since,
        basis=access_bases,
        include_exempt=include_exempt,
        received=received,
    )
    recorded = RecordedDisclosure.objects.filter(participant=participant, disclosed_at__gte=start)
    if now is not None:
        recorded = recorded.filter(disclosed_at__lte=now)
    entries = platform + [recorded_entry(disclosure) for disclosure in recorded]
    return sorted(entries, key=lambda entry: str(entry["date"]))


def period_start(*, received: datetime, since: datetime | None) -> datetime:
    """The start of an accounting's period: six years before the request's receipt, or the later start asked for."""
    lookback = accounting_since(received)
    return max(lookback, since) if since else lookback


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


def participants_disclosed_under_waiver(study: Study, *, since: datetime, until: datetime) -> int:
    """How many of ``study``'s participants had PHI disclosed under its waiver in ``[since, until]``.

    A disclosure here is an access whose basis is the waiver (in force then) by a
    recipient who was not the covered entity's workforce then: workforce uses,
    authorized reads and emergency accesses are not research disclosures under
    the waiver, and do not count towards the 50 of 164.528(b)(4).
    """
    pseudonyms = list(Participant.objects.filter(study=study).values_list("pseudonym", flat=True))
    found = accesses_among(pseudonyms, since=since, until=until)
    bases = bases_by_participant([access for access, _ in found])
    community = Community.objects.filter(schema_name=tenant_connection().schema_name).first()
    if community is None:
        return 0
    history = affiliation_history(community_id=community.pk, user_ids={actor for _, actor in found})
    disclosed = {
        access.pseudonym
        for access, actor in found
        if (basis := bases.get((access.sequence, access.pseudonym))) is not None
        and basis.kind is BasisKind.IRB_WAIVER
        and history.at(actor, access.when) != AffiliationKind.WORKFORCE
    }
    return len(disclosed)


def research_summarised(
    entries: Sequence[dict[str, Any]], participant: Participant, *, since: datetime, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The entries less those under the study's waiver, and the (b)(4) summary that stands for them.

    Only when the study runs under a waiver of authorization and the
    participants whose PHI was disclosed under it in the accounting's period
    (``since`` to ``now``) number 50 or more; otherwise the entries as they are.
    """
    study = participant.study
    waived = [entry for entry in entries if entry["basis"]["kind"] == BasisKind.IRB_WAIVER]
    if not waived or not study.irb_waiver_number:
        return list(entries), []
    if participants_disclosed_under_waiver(study, since=since, until=now) < RESEARCH_SUMMARY_MINIMUM:
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


def copy_verification(request: AccountingRequest) -> tuple[bool, int | None]:
    """Whether the copy kept for ``request`` is still the one whose SHA-256 its ``accounting.provide`` event holds.

    Returns:
        (matches, the event's audit sequence): ``(False, None)`` when no copy or no event is on record.
    """
    copy = getattr(request, "copy", None)
    if copy is None:
        return False, None
    audit_chain()
    event = (
        AuditEvent.objects.filter(
            action="accounting.provide", resource_type="accounting_request", resource_id=str(request.pk)
        )
        .order_by("sequence")
        .first()
    )
    if event is None:
        return False, None
    digest = hashlib.sha256(copy.content.encode("utf-8")).hexdigest()
    matches = f"sha256:{digest}" in event.reasons and copy.sha256 == digest
    return matches, event.sequence
