"""Writes of the accounting workflow, each with its audit event in the same transaction.

- :func:`accounting_request_open`: a request received (the 60-day clock starts at its receipt).
- :func:`accounting_request_extend`: the one extension, of at most 30 days, before the due date,
  with a written reason and the date the individual was told (164.528(c)(2)).
- :func:`accounting_request_provide`: the accounting built, stored as the exact bytes given out
  (canonical JSON and its SHA-256) with who provided it and the titles responsible (164.528(d)).
- :func:`suspension_record` and :func:`recorded_disclosure_record`: 164.528(a)(2), and the
  disclosures made off the platform.

Every write is a privileged change: its event (``accounting.*``) names the
participant's pseudonym, never their PHI, and never the requester's words.
"""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.canonical import canonical_json
from core.errors import BadRequest, Conflict
from core.schema import tenant_connection
from security.audit.disclosures import accounting_since
from security.audit.hashing import format_time
from security.audit.staging import record
from services.accounting.errors import AccountingErrorCode
from services.accounting.models import (
    AccountingRequest,
    ProvidedAccounting,
    RecordedDisclosure,
    RequestStatus,
    Suspension,
    SuspensionForm,
)
from services.accounting.selectors import accounting_entries, research_summarised, summarised, without_suspended
from services.participants.models import Participant

ANSWER_DAYS = 60
EXTENSION_MAX_DAYS = 30
ORAL_SUSPENSION_MAX_DAYS = 30
COPY_TYPE = "accounting-of-disclosures/v1"


def _event(action: str, *, actor_id: str, resource_type: str, resource_id: str, pseudonym: str = "") -> None:
    record(
        action=action,
        actor_id=actor_id,
        resource_type=resource_type,
        resource_id=resource_id,
        participant_pseudonyms=[pseudonym] if pseudonym else [],
    )


def accounting_request_open(
    *,
    participant: Participant,
    requester: str,
    actor_id: str,
    received_at: datetime.datetime | None = None,
    period_start: datetime.datetime | None = None,
) -> AccountingRequest:
    """Open a request received at ``received_at`` (now by default), due 60 days later.

    Raises:
        BadRequest: received in the future, or a period start after the receipt.
    """
    now = timezone.now()
    received = received_at or now
    if received > now:
        raise BadRequest("A request cannot be received in the future.", code=AccountingErrorCode.INVALID_PERIOD)
    if period_start is not None and period_start > received:
        raise BadRequest("The period cannot start after the request.", code=AccountingErrorCode.INVALID_PERIOD)
    with transaction.atomic():
        request = AccountingRequest.objects.create(
            participant=participant,
            requester=requester,
            received_at=received,
            period_start=period_start,
            due_at=received + datetime.timedelta(days=ANSWER_DAYS),
            opened_by=actor_id,
        )
        _event(
            "accounting.request_open",
            actor_id=actor_id,
            resource_type="accounting_request",
            resource_id=str(request.pk),
            pseudonym=participant.pseudonym,
        )
    return request


def _require_open(request: AccountingRequest) -> None:
    if request.status != RequestStatus.OPEN:
        raise Conflict("This accounting request is not open.", code=AccountingErrorCode.NOT_OPEN)


def accounting_request_extend(
    *, request: AccountingRequest, days: int, reason: str, individual_told_on: datetime.date, actor_id: str
) -> AccountingRequest:
    """Extend the due date of ``request`` (locked by its selector) once, by at most 30 days.

    Raises:
        Conflict: not open, extended already, or past its due date.
        BadRequest: more than 30 days (or fewer than one), or the individual told after the due date.
    """
    _require_open(request)
    if request.extended_due_at is not None:
        raise Conflict("A request may be extended once only.", code=AccountingErrorCode.ALREADY_EXTENDED)
    if timezone.now() >= request.due_at:
        raise Conflict("The due date has passed: too late to extend.", code=AccountingErrorCode.EXTENSION_TOO_LATE)
    if not 1 <= days <= EXTENSION_MAX_DAYS:
        raise BadRequest("An extension is of 1 to 30 days.", code=AccountingErrorCode.EXTENSION_TOO_LONG)
    if individual_told_on > timezone.localdate(request.due_at):
        raise BadRequest(
            "The individual must be told before the due date.", code=AccountingErrorCode.EXTENSION_TOO_LATE
        )
    with transaction.atomic():
        request.extended_due_at = request.due_at + datetime.timedelta(days=days)
        request.extension_reason = reason
        request.individual_told_on = individual_told_on
        request.save(update_fields=["extended_due_at", "extension_reason", "individual_told_on", "updated_at"])
        _event(
            "accounting.request_extend",
            actor_id=actor_id,
            resource_type="accounting_request",
            resource_id=str(request.pk),
            pseudonym=request.participant.pseudonym,
        )
    return request


def accounting_document(
    request: AccountingRequest,
    *,
    now: datetime.datetime,
    actor_id: str,
    responsible: str,
    summarise: bool,
    research_summaries: bool = False,
) -> dict[str, Any]:
    """The accounting provided for ``request`` at ``now``: what the copy holds."""
    since = request.period_start
    entries = without_suspended(accounting_entries(request.participant, now=now, since=since), now)
    summaries: list[dict[str, Any]] = []
    if research_summaries:
        entries, summaries = research_summarised(entries, request.participant, now=now)
    start = max(accounting_since(now), since) if since else accounting_since(now)
    return {
        "type": COPY_TYPE,
        "community": tenant_connection().schema_name,
        "participant": request.participant.pseudonym,
        "request": {"id": str(request.pk), "received_at": format_time(request.received_at)},
        "period": {"from": format_time(start), "to": format_time(now)},
        "provided_at": format_time(now),
        "provided_by": actor_id,
        "responsible": responsible,
        "summarised_repeated_disclosures": summarise,
        "disclosures": summarised(entries) if summarise else entries,
        "research_summaries": summaries,
    }


def accounting_request_provide(
    *,
    request: AccountingRequest,
    actor_id: str,
    responsible: str = "",
    summarise: bool = False,
    research_summaries: bool = False,
) -> ProvidedAccounting:
    """Build the accounting for ``request`` (locked by its selector), keep the copy provided, close the request.

    Args:
        request: The request, locked.
        actor_id: Who provides it.
        responsible: The titles of the persons or offices responsible; ``ACCOUNTING_RESPONSIBLE`` when empty.
        summarise: Summarise repeated disclosures to one recipient for one purpose (164.528(b)(3)).
        research_summaries: Summarise research under a waiver that involved 50 or more people (164.528(b)(4)).

    Raises:
        Conflict: the request is not open.
    """
    _require_open(request)
    now = timezone.now()
    titles = responsible or settings.ACCOUNTING_RESPONSIBLE
    document = accounting_document(
        request,
        now=now,
        actor_id=actor_id,
        responsible=titles,
        summarise=summarise,
        research_summaries=research_summaries,
    )
    content = canonical_json(document)
    with transaction.atomic():
        copy = ProvidedAccounting.objects.create(
            request=request,
            provided_at=now,
            provided_by=actor_id,
            responsible=titles,
            content=content.decode("utf-8"),
            sha256=hashlib.sha256(content).hexdigest(),
        )
        request.status = RequestStatus.PROVIDED
        request.save(update_fields=["status", "updated_at"])
        _event(
            "accounting.provide",
            actor_id=actor_id,
            resource_type="accounting_request",
            resource_id=str(request.pk),
            pseudonym=request.participant.pseudonym,
        )
    return copy


def suspension_record(
    *,
    agency: str,
    official: str,
    form: str,
    statement: str,
    starts_at: datetime.datetime,
    ends_at: datetime.datetime,
    actor_id: str,
) -> Suspension:
    """Record an agency's or official's request to suspend the accounting of disclosures to them.

    Raises:
        BadRequest: it ends before it starts, or an oral one lasts more than 30 days.
    """
    if ends_at <= starts_at:
        raise BadRequest("A suspension must end after it starts.", code=AccountingErrorCode.INVALID_PERIOD)
    if form == SuspensionForm.ORAL and ends_at - starts_at > datetime.timedelta(days=ORAL_SUSPENSION_MAX_DAYS):
        raise BadRequest(
            "An oral suspension lasts at most 30 days; record the written statement for longer.",
            code=AccountingErrorCode.ORAL_SUSPENSION_TOO_LONG,
        )
    with transaction.atomic():
        suspension = Suspension.objects.create(
            agency=agency,
            official=official,
            form=form,
            statement=statement,
            starts_at=starts_at,
            ends_at=ends_at,
            recorded_by=actor_id,
        )
        _event(
            "accounting.suspension_record",
            actor_id=actor_id,
            resource_type="suspension",
            resource_id=str(suspension.pk),
        )
    return suspension


def recorded_disclosure_record(
    *,
    participant: Participant,
    disclosed_at: datetime.datetime,
    recipient_name: str,
    recipient_organisation: str,
    description: str,
    purpose_statement: str,
    actor_id: str,
    recipient_address: str = "",
) -> RecordedDisclosure:
    """Record a disclosure of ``participant``'s PHI made off the platform.

    Raises:
        BadRequest: disclosed in the future.
    """
    if disclosed_at > timezone.now():
        raise BadRequest("A disclosure cannot be recorded in the future.", code=AccountingErrorCode.INVALID_PERIOD)
    with transaction.atomic():
        disclosure = RecordedDisclosure.objects.create(
            participant=participant,
            disclosed_at=disclosed_at,
            recipient_name=recipient_name,
            recipient_organisation=recipient_organisation,
            recipient_address=recipient_address,
            description=description,
            purpose_statement=purpose_statement,
            recorded_by=actor_id,
        )
        _event(
            "accounting.disclosure_record",
            actor_id=actor_id,
            resource_type="recorded_disclosure",
            resource_id=str(disclosure.pk),
            pseudonym=participant.pseudonym,
        )
    return disclosure
