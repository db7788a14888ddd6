"""Writes of consents: recording a signed form, and withdrawing one (a state, never a deletion).

The database recomputes the participant's active consent scopes on every
write of a consent (``consents`` migration 0002), so the policy sees a
withdrawal on the next request.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from core.errors import Conflict
from services.consents.errors import ConsentErrorCode
from services.consents.models import Consent
from services.participants.models import Participant


@transaction.atomic
def consent_record(
    *,
    participant: Participant,
    scopes: Sequence[str],
    form_version: str,
    signed_at: datetime.datetime,
    hipaa_authorization: bool = False,
) -> Consent:
    """Record a consent ``participant`` signed on ``signed_at`` for ``scopes`` (a HIPAA authorization or not)."""
    return Consent.objects.create(
        participant=participant,
        scopes=list(scopes),
        form_version=form_version,
        signed_at=signed_at,
        hipaa_authorization=hipaa_authorization,
    )


@transaction.atomic
def consent_withdraw(*, consent: Consent) -> Consent:
    """Mark ``consent`` (locked by its selector) withdrawn now; the record stays.

    Raises:
        Conflict: it was withdrawn already.
    """
    if consent.withdrawn_at is not None:
        raise Conflict("This consent was already withdrawn.", code=ConsentErrorCode.ALREADY_WITHDRAWN)
    consent.withdrawn_at = timezone.now()
    consent.save(update_fields=["withdrawn_at", "updated_at"])
    return consent
