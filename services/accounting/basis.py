"""The basis of each access to a participant's PHI, at the time of the access: authorization, IRB waiver or none.

A read for a purpose that a consent which is a HIPAA authorization (164.508)
covered at the time is exempt from the accounting (164.528(a)(1)(iv)); a read
under the study's waiver of authorization (164.512(i)) is listed with the
waiver named; anything else is listed with no basis on record (fail closed).
An emergency (break-glass) access is always listed (the accounting decides that
itself).

Who records a consent (a coordinator) can tick ``hipaa_authorization``; that
alone exempts nothing. An authorization counts only once a compliance officer
has confirmed it, from the latest of its signing date, the moment it was
recorded and the moment of the confirmation, so neither a backdated signature
nor a late confirmation exempts an earlier read; it stops counting when it is
withdrawn. A read an unconfirmed one would have covered is listed as
``authorization_not_confirmed``.

A waiver names an access only at or after both its approval date and the
moment the waiver was put on record (``irb_waiver_recorded_at``): a waiver added
to a study later names no earlier read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from django.utils import timezone

from security.audit.disclosures import Access, Basis, BasisKind
from services.consents.models import Consent
from services.participants.models import Participant
from services.studies.models import Study


def _covers(consent: Consent, access: Access, *, confirmed: bool) -> bool:
    moments = [consent.signed_at, consent.created_at]
    if confirmed:
        if consent.authorization_confirmed_at is None:
            return False
        moments.append(consent.authorization_confirmed_at)
    withdrawn = consent.withdrawn_at is not None and consent.withdrawn_at <= access.when
    return max(moments) <= access.when and not withdrawn and access.purpose in consent.scopes


def _authorization_at(consents: Sequence[Consent], access: Access, *, confirmed: bool) -> Consent | None:
    return next((consent for consent in consents if _covers(consent, access, confirmed=confirmed)), None)


def waiver_in_force(study: Study, when: dt.datetime) -> bool:
    """Whether ``study``'s waiver of authorization was approved and on record at ``when``."""
    if not study.irb_waiver_number or study.irb_waiver_recorded_at is None:
        return False
    if study.irb_waiver_date is not None:
        approved = dt.datetime.combine(study.irb_waiver_date, dt.time.min, tzinfo=timezone.get_current_timezone())
        if when < approved:
            return False
    return study.irb_waiver_recorded_at <= when


def _waiver_basis(study: Study) -> Basis:
    approved = f" of {study.irb_waiver_date.isoformat()}" if study.irb_waiver_date else ""
    return Basis(
        BasisKind.IRB_WAIVER,
        f"Basis: a waiver of authorization by an IRB or privacy board (approval {study.irb_waiver_number}"
        f"{approved}) for study {study.protocol_number}.",
        study.irb_waiver_number,
    )


def _basis(consents: Sequence[Consent], participant: Participant | None, access: Access) -> Basis | None:
    confirmed = _authorization_at(consents, access, confirmed=True)
    if confirmed is not None:
        return Basis(
            BasisKind.AUTHORIZATION,
            f"Basis: your signed authorization (form {confirmed.form_version}).",
            confirmed.form_version,
        )
    if participant is not None and waiver_in_force(participant.study, access.when):
        return _waiver_basis(participant.study)
    unconfirmed = _authorization_at(consents, access, confirmed=False)
    if unconfirmed is not None:
        return Basis(
            BasisKind.UNCONFIRMED_AUTHORIZATION,
            f"Basis: a consent recorded as an authorization (form {unconfirmed.form_version}) that no "
            "compliance officer had confirmed at the time.",
            unconfirmed.form_version,
        )
    return None


def bases_by_participant(accesses: Sequence[Access]) -> Mapping[tuple[int, str], Basis]:
    """The basis of each access, keyed by (audit sequence, pseudonym): one event may name many participants."""
    pseudonyms = {access.pseudonym for access in accesses}
    participants = {
        participant.pseudonym: participant
        for participant in Participant.objects.filter(pseudonym__in=pseudonyms).select_related("study")
    }
    authorizations: dict[str, list[Consent]] = {pseudonym: [] for pseudonym in pseudonyms}
    for consent in Consent.objects.filter(
        participant__pseudonym__in=pseudonyms, hipaa_authorization=True
    ).select_related("participant"):
        authorizations[consent.participant.pseudonym].append(consent)
    bases: dict[tuple[int, str], Basis] = {}
    for access in accesses:
        found = _basis(authorizations.get(access.pseudonym, []), participants.get(access.pseudonym), access)
        if found is not None:
            bases[(access.sequence, access.pseudonym)] = found
    return bases


def access_bases(accesses: Sequence[Access]) -> Mapping[int, Basis]:
    """The basis of each access of one participant (by audit sequence); those with none on record are left out."""
    return {sequence: basis for (sequence, _), basis in bases_by_participant(accesses).items()}
