"""Accounting of disclosures (45 CFR 164.528): the platform's accesses to one participant's PHI, six years back.

An access here is an allowed request that revealed the participant's PHI: an
action of the policy's one list of PHI-revealing actions (``phi_actions`` in
the policy data, which also carries each description), for a purpose the
policy does not exempt (``exempt_purposes``). Each entry carries what
164.528(b)(2) asks for:

- the date (when the request staged its audit event);
- the recipient: the user's name, organisation and postal address, their
  roles at the time and their **affiliation at the time** (``workforce`` or
  ``external``, :mod:`security.affiliations`);
- a brief description of the PHI, which says whether the view was redacted
  (derived from the roles on record and the policy's ``redacted_roles``);
- a purpose statement: the policy's sentence for the purpose
  (``purpose_statements``) and the basis of the access, which the caller
  resolves (a consent that is a HIPAA authorization, an IRB waiver, an
  emergency grant; the research data are not this package's to read).

An access is *accountable* unless an exemption applies that the reader cannot
claim: a use by the covered entity's workforce (affiliation in force at the
time), or a read under an authorization that covered the purpose then. An
emergency (break-glass) access is always accountable. Entries that are not
accountable are left out, unless the caller asks for them (the officer's view),
each labelled with its ``category``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from django.conf import settings
from django.utils import timezone

from core.schema import tenant_connection
from policy.matrix import PolicyMatrix, policy_matrix
from security.affiliations import AffiliationHistory, affiliation_history
from security.audit.formats import csv_row, spreadsheet_safe
from security.audit.hashing import format_time
from security.audit.models import AuditEvent, Outcome
from security.audit.sequencer import audit_chain
from security.models import AffiliationKind, User
from tenants.models import Community

CSV_COLUMNS = (
    "date",
    "recipient",
    "recipient_name",
    "recipient_organisation",
    "recipient_address",
    "recipient_roles",
    "affiliation",
    "category",
    "description",
    "purpose",
    "purpose_statement",
    "basis",
    "break_glass",
    "audit_sequence",
)


class BasisKind(StrEnum):
    """On what footing the PHI was read."""

    AUTHORIZATION = "authorization"  # a HIPAA authorization covering the purpose (164.508): exempt
    IRB_WAIVER = "irb_waiver"  # a waiver of authorization (164.512(i)): accountable
    # a consent flagged as an authorization that no compliance officer has confirmed: accountable
    UNCONFIRMED_AUTHORIZATION = "authorization_not_confirmed"
    EMERGENCY = "emergency"  # an emergency (break-glass) grant: always accountable
    NONE_ON_RECORD = "none_on_record"  # nothing on record: accountable (fail closed)


class Category(StrEnum):
    """What an access counts as in the accounting."""

    DISCLOSURE = "disclosure"
    WORKFORCE_USE = "workforce_use"
    AUTHORIZED = "authorized"


@dataclass(frozen=True)
class Basis:
    """The basis of one access and the sentence that names it (a form version, a waiver number)."""

    kind: BasisKind
    statement: str
    reference: str = ""


EMERGENCY_BASIS = Basis(BasisKind.EMERGENCY, "Basis: emergency (break-glass) access, without consent.")
NO_BASIS = Basis(BasisKind.NONE_ON_RECORD, "Basis: no authorization or waiver of authorization on record.")


@dataclass(frozen=True)
class Access:
    """What the basis of an access depends on: who was read, when, for what, and in which event."""

    sequence: int
    when: datetime
    pseudonym: str
    purpose: str
    break_glass: bool


class BasisResolver(Protocol):
    """The research apps' answer: the basis of each access (keyed by audit sequence)."""

    def __call__(self, accesses: Sequence[Access]) -> Mapping[int, Basis]:
        """The basis of each access; an access left out has none on record."""
        ...


# The accesses to any of ``pseudonyms`` since a time: each allowed PHI-revealing event, not exempt, not an emergency.
_ACCESSES_AMONG = """
SELECT sequence, occurred_at, staged_at, actor_id, purpose, named
FROM audit_auditevent, unnest(participant_pseudonyms) AS named
WHERE outcome = 'allow' AND action = ANY(%s) AND occurred_at >= %s AND occurred_at <= %s AND named = ANY(%s)
  AND NOT break_glass AND NOT purpose = ANY(%s)
ORDER BY sequence
"""


def accesses_among(pseudonyms: Sequence[str], *, since: datetime, until: datetime) -> list[tuple[Access, str]]:
    """Each non-emergency, non-exempt PHI access to one of ``pseudonyms`` in ``[since, until]``, with its actor.

    One :class:`Access` per participant an event named (a list names many), staged events chained first.
    """
    audit_chain()
    matrix = policy_matrix()
    with tenant_connection().cursor() as cursor:
        cursor.execute(
            _ACCESSES_AMONG,
            [list(matrix.phi_actions), since, until, list(pseudonyms), list(matrix.exempt_purposes)],
        )
        rows = cursor.fetchall()
    return [
        (Access(sequence, _access_time({"occurred_at": occurred, "staged_at": staged}), named, purpose, False), actor)
        for sequence, occurred, staged, actor, purpose, named in rows
    ]


def accounting_since(now: datetime | None = None) -> datetime:
    """The start of the accounting period: six years before ``now`` (the request's receipt, when there is one)."""
    return (now or timezone.now()) - timedelta(days=settings.DISCLOSURE_LOOKBACK_DAYS)


def disclosures(
    pseudonym: str,
    *,
    now: datetime | None = None,
    since: datetime | None = None,
    basis: BasisResolver | None = None,
    include_exempt: bool = False,
    received: datetime | None = None,
) -> list[dict[str, Any]]:
    """The accounting for the participant known by ``pseudonym``, oldest first (staged events chained first).

    Args:
        pseudonym: The participant.
        now: The time of the accounting (its period ends here; six years back unless ``since`` is later).
        since: A shorter period the individual asked for (164.528(b)(1)); never earlier than six years back.
        basis: Resolves the basis of each access; without it every access has none on record.
        include_exempt: Also list workforce uses and authorized reads (each labelled), for the officer.
        received: When the individual's request was received: the six years run back from it (164.528(a)(1)),
            not from ``now``; ``now`` when not given.
    """
    audit_chain()
    matrix = policy_matrix()
    lookback = accounting_since(received or now)
    start = max(lookback, since) if since else lookback
    events = AuditEvent.objects.filter(
        participant_pseudonyms__contains=[pseudonym],
        outcome=Outcome.ALLOW,
        action__in=list(matrix.phi_actions),
        occurred_at__gte=start,
    ).exclude(purpose__in=matrix.exempt_purposes, break_glass=False)  # an emergency is listed whatever its purpose
    if now is not None:
        events = events.filter(occurred_at__lte=now)
    rows = list(
        events.order_by("sequence").values(
            "sequence", "occurred_at", "staged_at", "actor_id", "actor_roles", "action", "purpose", "break_glass"
        )
    )
    accesses = [
        Access(row["sequence"], _access_time(row), pseudonym, row["purpose"], row["break_glass"]) for row in rows
    ]
    bases = basis(accesses) if basis is not None else {}
    recipients = _Recipients.of(rows)
    entries = [
        _entry(row, access, bases.get(access.sequence, NO_BASIS), recipients, matrix)
        for row, access in zip(rows, accesses, strict=True)
    ]
    return [entry for entry in entries if include_exempt or entry["category"] == Category.DISCLOSURE]


@dataclass(frozen=True)
class _Recipients:
    """The users named by some events, and their affiliations in this community over time."""

    users: Mapping[str, User]
    affiliations: AffiliationHistory

    @classmethod
    def of(cls, rows: Sequence[Mapping[str, Any]]) -> _Recipients:
        user_ids = {row["actor_id"] for row in rows if _is_uuid(row["actor_id"])}
        users = {str(user.pk): user for user in User.objects.filter(pk__in=user_ids)}
        community = Community.objects.filter(schema_name=tenant_connection().schema_name).first()
        history = (
            affiliation_history(community_id=community.pk, user_ids=user_ids) if community else AffiliationHistory()
        )
        return cls(users, history)

    def describe(self, user_id: str, roles: list[str], when: datetime) -> dict[str, Any]:
        user = self.users.get(user_id)
        return {
            "user_id": user_id,
            "email": user.email if user else "",
            "name": user.full_name if user else "",
            "organisation": user.organisation if user else "",
            "address": user.postal_address if user else "",
            "roles": roles,
            "affiliation": self.affiliations.at(user_id, when),
        }


def _entry(
    row: Mapping[str, Any], access: Access, basis: Basis, recipients: _Recipients, matrix: PolicyMatrix
) -> dict[str, Any]:
    recipient = recipients.describe(row["actor_id"], row["actor_roles"], access.when)
    if row["break_glass"]:
        basis = EMERGENCY_BASIS
    return {
        "date": format_time(access.when),
        "source": "platform",
        "category": _category(recipient["affiliation"], basis),
        "recipient": recipient,
        "description": _description(row, matrix),
        "redacted": matrix.redacted_view(action=row["action"], roles=row["actor_roles"]),
        "purpose": row["purpose"],
        "purpose_statement": f"{_purpose_sentence(row['purpose'], matrix)} {basis.statement}",
        "basis": {"kind": basis.kind.value, "reference": basis.reference},
        "break_glass": row["break_glass"],
        "audit_sequence": row["sequence"],
    }


def _category(affiliation: str, basis: Basis) -> Category:
    if basis.kind is BasisKind.EMERGENCY:
        return Category.DISCLOSURE
    if affiliation == AffiliationKind.WORKFORCE:
        return Category.WORKFORCE_USE
    if basis.kind is BasisKind.AUTHORIZATION:
        return Category.AUTHORIZED
    return Category.DISCLOSURE


def _purpose_sentence(purpose: str, matrix: PolicyMatrix) -> str:
    return matrix.purpose_statements.get(purpose, f"For a purpose stated as '{purpose}'.")


def _description(row: Mapping[str, Any], matrix: PolicyMatrix) -> str:
    """The policy's description of the action, and which kind of data the recipient saw."""
    text = matrix.phi_actions[row["action"]]
    if matrix.redacted_view(action=row["action"], roles=row["actor_roles"]):
        resource = row["action"].split(".", 1)[0]
        withheld = ", ".join(field.replace("_", " ") for field in matrix.phi_fields.get(resource, ("*",)))
        text += f", in the redacted research view (withheld: {withheld or 'none'})"
    else:
        text += ", identifiers included"
    if row["break_glass"]:
        text += ", under emergency (break-glass) access"
    return text


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
        recipient["name"],
        recipient["organisation"],
        recipient["address"],
        " ".join(recipient["roles"]),
        recipient["affiliation"],
        entry["category"],
        entry["description"],
        entry["purpose"],
        entry["purpose_statement"],
        " ".join(filter(None, [entry["basis"]["kind"], entry["basis"]["reference"]])),
        "yes" if entry["break_glass"] else "no",
        str(entry["audit_sequence"]) if entry["audit_sequence"] is not None else "",
    ]
    return [spreadsheet_safe(cell) for cell in cells]
