"""Members as recipients of disclosures: who they are (name, organisation, address), and their affiliation.

An affiliation says whether a member is the covered entity's own workforce or
from another organisation of the community.

The accounting of disclosures (45 CFR 164.528) lists disclosures, not uses: an
access by the covered entity's workforce is a use. Which one an access was is
decided by the affiliation **in force at the access time**: a change adds a row
from now on and never rewrites one, so switching to ``workforce`` hides no past
read. With no workforce row in force at that time, the access is a disclosure
(fail closed). Only an operator (``set_affiliation``) changes an affiliation, and
each change is a privileged-change event (``membership.affiliation``) in the
community's log, written in the same transaction.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django_tenants.utils import schema_context

from core.errors import BadRequest, NotFound
from security.actions import user_get
from security.audit.events import platform_record
from security.audit.staging import record
from security.errors import IdentityErrorCode
from security.models import Affiliation, AffiliationKind, Membership, User
from tenants.selectors import community_get


def user_profile_set(
    *,
    email: str,
    actor_id: str,
    full_name: str | None = None,
    organisation: str | None = None,
    postal_address: str | None = None,
) -> User:
    """Change what the accounting names the user by (the fields given); event ``user.profile`` in the platform log.

    Raises:
        NotFound: unknown user.
    """
    changes = {
        name: value
        for name, value in (
            ("full_name", full_name),
            ("organisation", organisation),
            ("postal_address", postal_address),
        )
        if value is not None
    }
    with transaction.atomic():
        user = user_get(email=email, for_update=True)
        for name, value in changes.items():
            setattr(user, name, value.strip())
        user.save(update_fields=list(changes))
        platform_record(
            action="user.profile",
            actor_id=actor_id,
            resource_type="user",
            resource_id=str(user.pk),
            reasons=sorted(changes),
        )
    return user


def affiliation_set(*, email: str, community_slug: str, kind: str, actor_id: str) -> Affiliation:
    """From now on, the member with ``email`` is of ``kind`` in the community; event ``membership.affiliation``.

    Raises:
        BadRequest: ``kind`` is neither ``workforce`` nor ``external``.
        NotFound: unknown user or community, or the user holds no role there.
    """
    if kind not in AffiliationKind.values:
        raise BadRequest(
            f"affiliation must be one of: {', '.join(AffiliationKind.values)}",
            code=IdentityErrorCode.INVALID_AFFILIATION,
        )
    community = community_get(slug=community_slug)
    user = user_get(email=email)
    if not Membership.objects.filter(user=user, community=community).exists():
        raise NotFound(f"the user is not a member of {community.slug}", code=IdentityErrorCode.MEMBERSHIP_NOT_FOUND)
    with transaction.atomic():
        # ``valid_from`` is the database's clock (its db_default), never the caller's: no start in the past.
        affiliation = Affiliation.objects.create(user=user, community=community, kind=kind, recorded_by=actor_id)
        with schema_context(community.schema_name):
            record(
                action="membership.affiliation",
                actor_id=actor_id,
                resource_type="membership",
                resource_id=str(user.pk),
                reasons=[f"to:{kind}"],
            )
    return affiliation


@dataclass(frozen=True)
class AffiliationHistory:
    """The affiliation periods of some users in one community, to ask "which, at this time?"."""

    periods: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)

    def at(self, user_id: str, when: datetime) -> str:
        """The affiliation of ``user_id`` in force at ``when``; ``external`` when none was on record then."""
        periods = self.periods.get(user_id, [])
        index = bisect.bisect_right([start for start, _ in periods], when)
        return periods[index - 1][1] if index else AffiliationKind.EXTERNAL.value


def affiliation_history(*, community_id: int, user_ids: Iterable[str]) -> AffiliationHistory:
    """Every affiliation period of ``user_ids`` in the community, oldest first."""
    periods: defaultdict[str, list[tuple[datetime, str]]] = defaultdict(list)
    rows = Affiliation.objects.filter(community_id=community_id, user_id__in=list(user_ids)).order_by(
        "valid_from", "id"
    )
    for user_id, valid_from, kind in rows.values_list("user_id", "valid_from", "kind"):
        periods[str(user_id)].append((valid_from, kind))
    return AffiliationHistory(dict(periods))
