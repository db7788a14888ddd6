"""The basis of each access to a participant's PHI, at the time of the access: authorization, IRB waiver or none.

A read for a purpose that a consent which is a HIPAA authorization (164.508)
covered at the time is exempt from the accounting (164.528(a)(1)(iv)); a read
under the study's waiver of authorization (164.512(i)) is listed with the
waiver named; anything else is listed with no basis on record (fail closed).
An emergency (break-glass) access is always listed (the accounting decides that
itself). A consent counts from the later of its signing date and the moment it
was recorded, so a consent recorded with a backdated signature exempts no read
made before it was on record; it stops counting when it is withdrawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from security.audit.disclosures import Access, Basis, BasisKind
from services.consents.models import Consent
from services.participants.models import Participant


def _authorization_at(consents: Sequence[Consent], access: Access) -> Consent | None:
    for consent in consents:
        in_force_from: datetime = max(consent.signed_at, consent.created_at)
        withdrawn = consent.withdrawn_at is not None and consent.withdrawn_at <= access.when
        if in_force_from <= access.when and not withdrawn and access.purpose in consent.scopes:
            return consent
    return None


def access_bases(accesses: Sequence[Access]) -> Mapping[int, Basis]:
    """The basis of each access (by audit sequence); those with none on record are left out."""
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
    bases: dict[int, Basis] = {}
    for access in accesses:
        participant = participants.get(access.pseudonym)
        authorization = _authorization_at(authorizations.get(access.pseudonym, []), access)
        if authorization is not None:
            bases[access.sequence] = Basis(
                BasisKind.AUTHORIZATION,
                f"Basis: your signed authorization (form {authorization.form_version}).",
                authorization.form_version,
            )
        elif participant is not None and participant.study.irb_waiver_number:
            study = participant.study
            approved = f" of {study.irb_waiver_date.isoformat()}" if study.irb_waiver_date else ""
            bases[access.sequence] = Basis(
                BasisKind.IRB_WAIVER,
                f"Basis: a waiver of authorization by an IRB or privacy board (approval {study.irb_waiver_number}"
                f"{approved}) for study {study.protocol_number}.",
                study.irb_waiver_number,
            )
    return bases
