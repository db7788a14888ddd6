"""Writes of consents: recording a signed form, and withdrawing one (a state, never a deletion).

The database recomputes the participant's active consent scopes on every
write of a consent (``consents`` migration 0002), so the policy sees a
withdrawal on the next request.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from django.db import transaction
from django.db.models.functions import Now
from django.utils import timezone

from core.errors import Conflict
from security.audit.staging import record
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


@transaction.atomic
def consent_authorization_confirm(*, consent: Consent, actor_id: str) -> Consent:
    """A compliance officer confirms ``consent`` (locked by its selector) is a valid HIPAA authorization (164.508).

    Until then the ``hipaa_authorization`` flag that whoever recorded the consent set exempts no read
    from the accounting of disclosures; from the confirmation on (the database's time) reads for a
    purpose it covers are exempt. Event ``consent.authorization_confirm``, a privileged change.

    Raises:
        Conflict: not recorded as an authorization, withdrawn, or confirmed already.
    """
    if not consent.hipaa_authorization:
        raise Conflict(
            "This consent is not recorded as a HIPAA authorization.", code=ConsentErrorCode.NOT_AUTHORIZATION
        )
    if consent.withdrawn_at is not None:
        raise Conflict("This consent was withdrawn.", code=ConsentErrorCode.ALREADY_WITHDRAWN)
    if consent.authorization_confirmed_at is not None:
        raise Conflict("This authorization was confirmed already.", code=ConsentErrorCode.ALREADY_CONFIRMED)
    consent.authorization_confirmed_at = Now()  # the database's clock
    consent.authorization_confirmed_by = actor_id
    consent.save(update_fields=["authorization_confirmed_at", "authorization_confirmed_by", "updated_at"])
    consent.refresh_from_db(fields=["authorization_confirmed_at"])
    record(
        action="consent.authorization_confirm",
        actor_id=actor_id,
        resource_type="consent",
        resource_id=str(consent.pk),
        participant_pseudonyms=[consent.participant.pseudonym],
        reasons=[f"form:{consent.form_version}"],
    )
    return consent
