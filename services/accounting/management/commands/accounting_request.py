r"""``accounting_request``: the register of requests for an accounting of disclosures, from a shell.

    python manage.py accounting_request --community alpha --operator jo open \\
        --participant ID --requester "letter of 2026-03-02" [--received-at ISO] [--period-start ISO]
    python manage.py accounting_request --community alpha --operator jo extend \\
        --request ID --days 30 --reason "records at a second site" --told-on 2026-04-01
    python manage.py accounting_request --community alpha --operator jo provide --request ID \\
        [--responsible "Privacy Officer"] [--summarise-repeated] [--summarise-research] [--output FILE]
    python manage.py accounting_request --community alpha --operator jo list [--status open]
    python manage.py accounting_request --community alpha --operator jo verify --request ID

The same actions as the API (:mod:`services.accounting.actions`), each with its
audit event naming the operator. ``provide`` writes the copy kept, byte for byte.
``verify`` checks the copy kept against the SHA-256 its ``accounting.provide``
event holds in the hash-chained log (a non-zero exit when it no longer matches).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django_tenants.utils import schema_context

from core.commands import OperatorCommand
from services.accounting.actions import accounting_request_extend, accounting_request_open, accounting_request_provide
from services.accounting.models import RequestStatus
from services.accounting.selectors import access_accounting_request, accounting_requests, copy_verification
from services.participants.models import Participant
from tenants.selectors import community_get


def _moment(value: str | None) -> Any:
    if value is None:
        return None
    parsed = parse_datetime(value)
    if parsed is None or timezone.is_naive(parsed):
        raise CommandError(f"not an ISO 8601 time with a zone: {value}")
    return parsed


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise CommandError(f"--{what}: not an id (a UUID)") from None


class Command(OperatorCommand):
    """Open, extend, provide or list accounting requests of one community."""

    help = "Open, extend, provide or list requests for an accounting of disclosures (45 CFR 164.528)."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --community and the four verbs."""
        parser.add_argument("--community", required=True)
        verbs = parser.add_subparsers(dest="verb", required=True)
        opened = verbs.add_parser("open")
        opened.add_argument("--participant", required=True)
        opened.add_argument("--requester", required=True, help="how the individual asked (no PHI)")
        opened.add_argument("--received-at")
        opened.add_argument("--period-start")
        extended = verbs.add_parser("extend")
        extended.add_argument("--request", required=True)
        extended.add_argument("--days", type=int, required=True)
        extended.add_argument("--reason", required=True)
        extended.add_argument("--told-on", required=True, help="the date the individual was told (YYYY-MM-DD)")
        provided = verbs.add_parser("provide")
        provided.add_argument("--request", required=True)
        provided.add_argument("--responsible", default="")
        provided.add_argument("--summarise-repeated", action="store_true")
        provided.add_argument("--summarise-research", action="store_true")
        provided.add_argument("--output", type=Path)
        listed = verbs.add_parser("list")
        listed.add_argument("--status", choices=RequestStatus.values)
        verified = verbs.add_parser("verify")
        verified.add_argument("--request", required=True)

    def run(self, **options: Any) -> None:
        """Run the verb inside the community's schema."""
        community = community_get(slug=options["community"])
        with schema_context(community.schema_name):
            getattr(self, f"_{options['verb']}")(options)

    def _open(self, options: dict[str, Any]) -> None:
        participant = Participant.objects.filter(pk=_uuid(options["participant"], "participant")).first()
        if participant is None:
            raise CommandError("no such participant in this community")
        made = accounting_request_open(
            participant=participant,
            requester=options["requester"],
            received_at=_moment(options["received_at"]),
            period_start=_moment(options["period_start"]),
            actor_id=self.actor_id,
        )
        self.stdout.write(f"request {made.pk} opened, due {made.due_at.isoformat()}")

    def _extend(self, options: dict[str, Any]) -> None:
        told_on = parse_date(options["told_on"])
        if told_on is None:
            raise CommandError("--told-on: not a date (YYYY-MM-DD)")
        with transaction.atomic():
            request = access_accounting_request(
                request_id=_uuid(options["request"], "request"), action="accounting.manage", for_update=True
            )
            made = accounting_request_extend(
                request=request,
                days=options["days"],
                reason=options["reason"],
                individual_told_on=told_on,
                actor_id=self.actor_id,
            )
        self.stdout.write(f"request {made.pk} extended, due {made.extended_due_at}")

    def _provide(self, options: dict[str, Any]) -> None:
        with transaction.atomic():
            request = access_accounting_request(
                request_id=_uuid(options["request"], "request"), action="accounting.provide", for_update=True
            )
            copy = accounting_request_provide(
                request=request,
                actor_id=self.actor_id,
                responsible=options["responsible"],
                summarise=options["summarise_repeated"],
                research_summaries=options["summarise_research"],
            )
        if options["output"] is not None:
            options["output"].write_bytes(copy.content.encode("utf-8"))
        self.stdout.write(f"request {request.pk} provided, sha256 {copy.sha256}")

    def _list(self, options: dict[str, Any]) -> None:
        for request in accounting_requests(status=options["status"]):
            due = request.extended_due_at or request.due_at
            overdue = request.status == RequestStatus.OPEN and timezone.now() > due
            flag = " OVERDUE" if overdue else ""
            self.stdout.write(
                f"{request.pk} {request.status} received {request.received_at.isoformat()} due {due.isoformat()}{flag}"
            )

    def _verify(self, options: dict[str, Any]) -> None:
        request = access_accounting_request(request_id=_uuid(options["request"], "request"), action="accounting.copy")
        matches, sequence = copy_verification(request)
        if sequence is None:
            raise CommandError(f"request {request.pk}: no copy provided, or no accounting.provide event on record")
        if not matches:
            raise CommandError(f"request {request.pk}: the copy kept does NOT match its audit event {sequence}")
        self.stdout.write(f"request {request.pk}: the copy kept matches its audit event {sequence}")
