"""The review queue in words a compliance officer reads: who held a grant, over what, how it ran and ended, its uses.

Built for a page of grants at once (one query for their uses, one for the
people they name). Every use is described as the policy data describes its
action (``phi_actions``, the same text the accounting of disclosures gives),
or by the action's name when it reveals no PHI. Nothing here is PHI beyond
what the reviewer is shown anyway: pseudonyms, never names or record numbers.
The CSV form (:func:`queue_csv`), which leaves the service, carries neither
the reason nor the review comment: either may describe a person.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from security.audit.formats import csv_row, spreadsheet_safe
from security.audit.hashing import format_time
from security.breakglass.alarms import grant_alarms
from security.breakglass.models import AlarmCode, BreakGlassGrant
from security.breakglass.selectors import (
    USES_SHOWN,
    Person,
    grant_uses,
    officers_of,
    people,
    scope_words,
    use_description,
)
from tenants.models import Community


@dataclass(frozen=True)
class Ending:
    """How a grant ended: ``active`` (not yet), ``expired`` or ``revoked`` (and by whom)."""

    how: str
    at: datetime | None
    by: Person | None


@dataclass(frozen=True)
class GrantWords:
    """What the queue says of one grant besides its stored fields."""

    holder: Person
    covers: str
    minutes: int
    ended: Ending
    alarms: list[AlarmCode]
    uses: list[dict[str, Any]] = field(default_factory=list)
    uses_truncated: bool = False
    summary: str = ""


def grants_in_words(grants: Sequence[BreakGlassGrant], *, community: Community, now: datetime) -> dict[str, GrantWords]:
    """The words of each of ``grants`` (of ``community``, the current schema's) at ``now``, by grant id."""
    uses = grant_uses(grants)
    named = people(
        [grant.user_id for grant in grants]
        + [grant.revoked_by for grant in grants]
        + [grant.reviewed_by for grant in grants]
    )
    officers = len(officers_of(community))
    covers = scope_words(grants)  # one query per kind of scope for the page
    return {
        str(grant.id): _words(
            grant, uses[str(grant.id)], named, covers=covers[grant.scope, grant.scope_id], officers=officers, now=now
        )
        for grant in grants
    }


def _words(
    grant: BreakGlassGrant,
    events: list[dict[str, Any]],
    named: Mapping[str, Person],
    *,
    covers: str,
    officers: int,
    now: datetime,
) -> GrantWords:
    holder = named[str(grant.user_id)]
    ended = _ending(grant, named, now)
    shown = [_use(event) for event in events[:USES_SHOWN]]
    words = GrantWords(
        holder=holder,
        covers=covers,
        minutes=int((min(grant.ends_at, now) - grant.created_at).total_seconds() // 60),
        ended=ended,
        alarms=grant_alarms(grant, now=now, officers=officers),
        uses=shown,
        uses_truncated=len(events) > USES_SHOWN,
    )
    return replace(words, summary=_summary(grant, words, named))


def _ending(grant: BreakGlassGrant, named: Mapping[str, Person], now: datetime) -> Ending:
    if grant.is_active(now):
        return Ending("active", None, None)
    if grant.revoked_at is not None and grant.revoked_at < grant.expires_at:
        by = named.get(str(grant.revoked_by)) if grant.revoked_by is not None else None
        return Ending("revoked", grant.revoked_at, by)
    return Ending("expired", grant.expires_at, None)


def _use(event: dict[str, Any]) -> dict[str, Any]:
    staged: datetime | None = event["staged_at"]
    occurred: datetime = event["occurred_at"]
    return {
        "sequence": event["sequence"],
        # When the request was made (as the database staged it); the chain's time is when it was recorded.
        "occurred_at": occurred if staged is None else min(occurred, staged),
        "action": event["action"],
        "description": use_description(event["action"]),
        "participants": list(event["participant_pseudonyms"]),
        "resource_type": event["resource_type"],
        "resource_id": event["resource_id"],
        "outcome": event["outcome"],
        "http_status": event["http_status"],
    }


def _summary(grant: BreakGlassGrant, words: GrantWords, named: Mapping[str, Person]) -> str:
    opened = f"{words.holder.name} opened emergency access to {words.covers} at {_when(grant.created_at)}"
    if words.ended.how == "active":
        ran = f"; it is active until {_when(grant.expires_at)}"
    elif words.ended.how == "revoked":
        by = words.ended.by.name if words.ended.by else "someone no longer known"
        ran = f"; it ran {_count(words.minutes, 'minute')} and was revoked by {by}"
    else:
        ran = f"; it ran {_count(words.minutes, 'minute')} and expired"
    told = (
        f"Compliance officers were told at {_when(grant.notified_at)}."
        if grant.notified_at is not None
        else "Compliance officers have not been told."
    )
    refused = sum(use["outcome"] != "allow" for use in words.uses)
    more = " or more" if words.uses_truncated else ""
    used = f"{_count(len(words.uses), 'use')}{more}, {refused} refused."
    reviewer = named.get(str(grant.reviewed_by)) if grant.reviewed_by is not None else None
    reviewed = (
        f" Reviewed by {reviewer.name if reviewer else grant.reviewed_by} at {_when(grant.reviewed_at)}."
        if grant.reviewed_at is not None
        else " Not reviewed."
    )
    return f"{opened}{ran}. {told} {used}{reviewed}"


def _when(value: datetime) -> str:
    """A time as a reader takes it in: to the minute, in UTC."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


CSV_COLUMNS = (
    "grant_id",
    "holder",
    "covers",
    "opened_at",
    "minutes",
    "ended",
    "ended_at",
    "ended_by",
    "notified_at",
    "reviewed_at",
    "reviewed_by",
    "alarms",
    "use_sequence",
    "use_at",
    "use_description",
    "use_participants",
    "use_outcome",
    "use_http_status",
)


def queue_csv(
    grants: Sequence[BreakGlassGrant], words: Mapping[str, GrantWords], reviewers: Mapping[str, Person]
) -> Iterator[str]:
    """The queue as CSV lines: a header, then a row per use (a grant without uses has one, its use cells empty)."""
    yield csv_row(CSV_COLUMNS)
    for grant in grants:
        said = words[str(grant.id)]
        reviewer = reviewers.get(str(grant.reviewed_by)) if grant.reviewed_by is not None else None
        cells = [
            str(grant.id),
            said.holder.name,
            said.covers,
            format_time(grant.created_at),
            str(said.minutes),
            said.ended.how,
            _time(said.ended.at),
            said.ended.by.name if said.ended.by else "",
            _time(grant.notified_at),
            _time(grant.reviewed_at),
            reviewer.name if reviewer else "",
            " ".join(said.alarms),
        ]
        uses: list[dict[str, Any] | None] = [*said.uses] or [None]
        for use in uses:
            yield csv_row(spreadsheet_safe(cell) for cell in cells + _use_cells(use))


def _use_cells(use: Mapping[str, Any] | None) -> list[str]:
    if use is None:
        return [""] * 6
    return [
        str(use["sequence"]),
        format_time(use["occurred_at"]),
        use["description"],
        " ".join(use["participants"]),
        use["outcome"],
        str(use["http_status"]),
    ]


def _time(value: datetime | None) -> str:
    return "" if value is None else format_time(value)
