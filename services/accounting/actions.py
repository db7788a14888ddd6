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
from django.db.models import Q
from django.utils import timezone

from core.canonical import canonical_json
from core.errors import BadRequest, Conflict
from core.schema import tenant_connection
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
from services.accounting.selectors import (
    accounting_entries,
    period_start,
    research_summarised,
    summarised,
    without_suspended,
)
from services.participants.models import Participant

ANSWER_DAYS = 60
EXTENSION_MAX_DAYS = 30
ORAL_SUSPENSION_MAX_DAYS = 30
COPY_TYPE = "accounting-of-disclosures/v1"


def _event(
    action: str,
    *,
    actor_id: str,
    resource_type: str,
    resource_id: str,
    pseudonym: str = "",
    reasons: list[str] | None = None,
) -> None:
    record(
        action=action,
        actor_id=actor_id,
        resource_type=resource_type,
        resource_id=resource_id,
        participant_pseudonyms=[pseudonym] if pseudonym else [],
        reasons=reasons or [],
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
        BadRequest: more than 30 days (or fewer than one), or the individual told after the due date,
            in the future or before the request was received.
    """
    _require_open(request)
    if request.extended_due_at is not None:
        raise Conflict("A request may be extended once only.", code=AccountingErrorCode.ALREADY_EXTENDED)
    if timezone.now() >= request.due_at:
        raise Conflict("The due date has passed: too late to extend.", code=AccountingErrorCode.EXTENSION_TOO_LATE)
    if not 1 <= days <= EXTENSION_MAX_DAYS:
        raise BadRequest("An extension is of 1 to 30 days.", code=AccountingErrorCode.EXTENSION_TOO_LONG)
    if not timezone.localdate(request.received_at) <= individual_told_on <= timezone.localdate():
        raise BadRequest(
            "The date the individual was told must be between the request's receipt and today.",
            code=AccountingErrorCode.INVALID_TOLD_ON,
        )
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
    """The accounting provided for ``request`` at ``now``: what the copy holds.

    Its period runs from six years before the request's *receipt* (164.528(a)(1)), or the later start the
    individual asked for, to ``now``: an extension does not shorten it.
    """
    since, received = request.period_start, request.received_at
    start = period_start(received=received, since=since)
    entries = accounting_entries(request.participant, now=now, since=since, received=received)
    entries = without_suspended(entries, now)
    summaries: list[dict[str, Any]] = []
    if research_summaries:
        entries, summaries = research_summarised(entries, request.participant, since=start, now=now)
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
    digest = hashlib.sha256(content).hexdigest()
    with transaction.atomic():
        copy = ProvidedAccounting.objects.create(
            request=request,
            provided_at=now,
            provided_by=actor_id,
            responsible=titles,
            content=content.decode("utf-8"),
            sha256=digest,
        )
        request.status = RequestStatus.PROVIDED
        request.save(update_fields=["status", "updated_at"])
        # The copy's digest enters the hash chain: a copy rewritten later no longer matches its event.
        _event(
            "accounting.provide",
            actor_id=actor_id,
            resource_type="accounting_request",
            resource_id=str(request.pk),
            pseudonym=request.participant.pseudonym,
            reasons=[f"sha256:{digest}", f"entries:{len(document['disclosures'])}"],
        )
    return copy


def _check_oral(
    *, agency: str, starts_at: datetime.datetime, ends_at: datetime.datetime, now: datetime.datetime
) -> None:
    """164.528(a)(2)(ii): an oral statement suspends from now, for at most 30 days, once; longer needs writing."""
    if starts_at > now:
        raise BadRequest(
            "An oral suspension starts when it is recorded, not later.",
            code=AccountingErrorCode.ORAL_SUSPENSION_NOT_STARTED,
        )
    if ends_at > now + datetime.timedelta(days=ORAL_SUSPENSION_MAX_DAYS):
        raise BadRequest(
            "An oral suspension lasts at most 30 days from its recording; record the written statement for longer.",
            code=AccountingErrorCode.ORAL_SUSPENSION_TOO_LONG,
        )
    window = now - datetime.timedelta(days=ORAL_SUSPENSION_MAX_DAYS)
    earlier = Suspension.objects.filter(agency__iexact=agency, form=SuspensionForm.ORAL)
    if earlier.filter(Q(ends_at__gt=window) | Q(created_at__gt=window)).exists():
        raise Conflict(
            "This agency's oral suspension is in force or ended less than 30 days ago; record its written statement.",
            code=AccountingErrorCode.ORAL_SUSPENSION_REPEATED,
        )


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

    An oral statement suspends from its recording (``starts_at`` not later than now) until at most
    30 days after it, and is not renewed by another oral one: a second oral suspension for the same
    agency while one is in force or less than 30 days after it ended is refused (record the written
    statement instead).

    Raises:
        BadRequest: it ends before it starts; an oral one starts later than now or ends more than 30 days on.
        Conflict: an oral one following another oral one of the same agency within its period.
    """
    if ends_at <= starts_at:
        raise BadRequest("A suspension must end after it starts.", code=AccountingErrorCode.INVALID_PERIOD)
    with transaction.atomic():
        if form == SuspensionForm.ORAL:
            # One agency's oral suspensions in this community are decided one at a time (two at once cannot both
            # pass the check); the key names the schema, so communities never wait on each other's agencies.
            with tenant_connection().cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('oral-suspension:' || current_schema() || ':' || %s))",
                    [agency.casefold()],
                )
            _check_oral(agency=agency, starts_at=starts_at, ends_at=ends_at, now=timezone.now())
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
            reasons=[f"form:{form}"],
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
