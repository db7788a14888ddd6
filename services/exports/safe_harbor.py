"""HIPAA Safe Harbor de-identification (45 CFR 164.514(b)(2)) as pure functions over plain dicts.

Nothing here touches the database, the keys or the clock: the caller hands in
a participant (and their observations) as plain values and the export date,
and gets back the record an export may carry. That keeps the rules small
enough to read against the regulation and lets property tests throw arbitrary
participants at them.

The approach is an allowlist: a record is built only from the few values that
Safe Harbor lets through, each generalised as the rule says (dates to the
year, ages over 89 to ``90+``, ZIP codes to three digits where the census
allows, else ``000``). Everything else, free text included, never reaches the
record, so a new field on the models cannot leak by default. Whether an
observation's code and unit are well formed is not a HIPAA rule and is asked
of :mod:`services.exports.terminology` and :mod:`services.exports.ucum`.
"""

from __future__ import annotations

import csv
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TypedDict

from services.exports.terminology import generalize_code
from services.exports.ucum import is_ucum_unit

RESTRICTED_ZIP3_FILE = Path(__file__).resolve().parent / "data" / "restricted_zip3.csv"
SUPPRESSED_ZIP3 = "000"
OLDEST_EXPORTED_AGE = 89  # 164.514(b)(2)(i)(C): ages over 89 are aggregated into one category
AGE_CATEGORY_OVER_89 = "90+"
RESEARCH_ID_PREFIX = "R-"
RESEARCH_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
RESEARCH_ID_LENGTH = 16  # 80 random bits


# --- input and output shapes ----------------------------------------------------------


class ObservationInput(TypedDict, total=False):
    """An observation as stored (``display``, ``value_text`` and ``note`` are free text)."""

    code_system: str
    code: str
    display: str
    value_number: Decimal | None
    value_text: str
    unit: str
    effective_date: date | None
    note: str | None


class ParticipantInput(TypedDict, total=False):
    """A participant as stored, with their observations; any field may be missing."""

    given_name: str | None
    family_name: str | None
    date_of_birth: date | None
    sex: str | None
    mrn: str | None
    email: str | None
    phone: str | None
    street_address: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    pseudonym: str | None
    protocol_number: str | None
    observations: Sequence[ObservationInput]


class DeidentifiedObservation(TypedDict):
    """What an export carries of one observation."""

    code_system: str
    code: str
    value_number: Decimal | None
    unit: str | None
    effective_year: int | None


class DeidentifiedRecord(TypedDict):
    """What an export carries of one participant."""

    research_id: str
    sex: str
    birth_year: int | None
    age: int | str | None
    state: str | None
    zip3: str
    observations: list[DeidentifiedObservation]


# --- the eighteen identifier kinds and how exports handle each -----------------------------


class Handling(StrEnum):
    """What an export does with one kind of identifier."""

    REMOVED = "removed"
    GENERALIZED = "generalized"
    REPLACED = "replaced"
    NOT_COLLECTED = "not_collected"


@dataclass(frozen=True)
class IdentifierKind:
    """One identifier of 164.514(b)(2)(i), by its letter, with how exports handle it."""

    letter: str
    identifier: str
    handling: Handling
    detail: str

    def as_dict(self) -> dict[str, str]:
        """The manifest's form."""
        return {
            "letter": self.letter,
            "identifier": self.identifier,
            "handling": str(self.handling),
            "detail": self.detail,
        }


_FREE_TEXT = "free text (observation display, text values, notes) is never exported"
IDENTIFIER_KINDS: tuple[IdentifierKind, ...] = (
    IdentifierKind("a", "Names", Handling.REMOVED, "given and family names are not exported"),
    IdentifierKind(
        "b",
        "Geographic subdivisions smaller than a state",
        Handling.GENERALIZED,
        "street address and city removed; state kept; ZIP code cut to its first three digits, "
        "or 000 where the prefix covers 20,000 people or fewer (HHS list, 2000 Census) or the code is not a US ZIP",
    ),
    IdentifierKind(
        "c",
        "All elements of dates (except year) related to an individual; ages over 89",
        Handling.GENERALIZED,
        "date of birth to the birth year and observation dates to their year; age at the export date; "
        "ages over 89 exported as 90+ with no birth year; record timestamps not exported",
    ),
    IdentifierKind("d", "Telephone numbers", Handling.REMOVED, "phone numbers are not exported"),
    IdentifierKind("e", "Fax numbers", Handling.NOT_COLLECTED, "not a field of the record; " + _FREE_TEXT),
    IdentifierKind("f", "Electronic mail addresses", Handling.REMOVED, "email addresses are not exported"),
    IdentifierKind("g", "Social security numbers", Handling.NOT_COLLECTED, "not a field of the record; " + _FREE_TEXT),
    IdentifierKind("h", "Medical record numbers", Handling.REMOVED, "MRNs are not exported"),
    IdentifierKind(
        "i", "Health plan beneficiary numbers", Handling.NOT_COLLECTED, "not a field of the record; " + _FREE_TEXT
    ),
    IdentifierKind("j", "Account numbers", Handling.NOT_COLLECTED, "not a field of the record; " + _FREE_TEXT),
    IdentifierKind(
        "k", "Certificate/license numbers", Handling.NOT_COLLECTED, "not a field of the record; " + _FREE_TEXT
    ),
    IdentifierKind(
        "l",
        "Vehicle identifiers and serial numbers, including license plate numbers",
        Handling.NOT_COLLECTED,
        "not a field of the record; " + _FREE_TEXT,
    ),
    IdentifierKind(
        "m",
        "Device identifiers and serial numbers",
        Handling.NOT_COLLECTED,
        "not a field of the record; " + _FREE_TEXT,
    ),
    IdentifierKind(
        "n",
        "Web Universal Resource Locators (URLs)",
        Handling.NOT_COLLECTED,
        "not a field of the record; " + _FREE_TEXT + "; code systems are named by their standard URIs only",
    ),
    IdentifierKind(
        "o",
        "Internet Protocol (IP) address numbers",
        Handling.NOT_COLLECTED,
        "request addresses stay in the audit log and never reach an export",
    ),
    IdentifierKind(
        "p",
        "Biometric identifiers, including finger and voice prints",
        Handling.NOT_COLLECTED,
        "not a field of the record",
    ),
    IdentifierKind(
        "q",
        "Full face photographic images and any comparable images",
        Handling.NOT_COLLECTED,
        "not a field of the record",
    ),
    IdentifierKind(
        "r",
        "Any other unique identifying number, characteristic, or code",
        Handling.REPLACED,
        "pseudonym, database ids and the study protocol number removed; participants keyed by a research id "
        "drawn at random for each export and derived from nothing about the person (164.514(c)); observation "
        "codes kept only for known code systems when well formed, units only when UCUM; sex reduced to "
        "female, male, other or unknown",
    ),
)


def identifier_handling() -> list[dict[str, str]]:
    """The manifest's list of the eighteen identifier kinds and how each was handled."""
    return [kind.as_dict() for kind in IDENTIFIER_KINDS]


# --- geography -------------------------------------------------------------------------

# USPS codes of the states, DC and the territories: a state is the smallest unit Safe Harbor keeps.
_STATES = "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND"
_TERRITORIES_AND_REST = "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI"
STATE_CODES = frozenset(f"{_STATES} {_TERRITORIES_AND_REST}".split(" "))
_ZIP = re.compile(r"(\d{3})\d{2}(?:-?\d{4})?")


def load_zip3_table(path: Path) -> frozenset[str]:
    """The prefixes of a ZIP3 table: a CSV with a ``zip3`` column; lines starting ``#`` are its notes.

    Raises:
        ValueError: The table is empty or holds something other than three digits.
    """
    with path.open(newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        prefixes = [str(row.get("zip3") or "").strip() for row in rows]
    if not prefixes or not all(re.fullmatch(r"\d{3}", prefix) for prefix in prefixes):
        raise ValueError(f"{path.name} is not a table of three-digit ZIP prefixes")
    return frozenset(prefixes)


@cache
def restricted_zip3() -> frozenset[str]:
    """The three-digit prefixes with 20,000 people or fewer, shipped as ``data/restricted_zip3.csv``."""
    return load_zip3_table(RESTRICTED_ZIP3_FILE)


def generalize_zip(postal_code: str | None) -> str:
    """The first three digits of a US ZIP code, or ``000`` when restricted or not a ZIP code at all."""
    match = _ZIP.fullmatch((postal_code or "").strip())
    if match is None or match.group(1) in restricted_zip3():
        return SUPPRESSED_ZIP3
    return match.group(1)


def normalize_state(state: str | None) -> str | None:
    """A USPS state code, or None for anything else."""
    code = (state or "").strip().upper()
    return code if code in STATE_CODES else None


# --- dates and ages ------------------------------------------------------------------------


def age_on(date_of_birth: date, as_of: date) -> int | None:
    """Completed years of age on ``as_of``; None for a birth date after it."""
    if date_of_birth > as_of:
        return None
    return as_of.year - date_of_birth.year - ((as_of.month, as_of.day) < (date_of_birth.month, date_of_birth.day))


def generalize_birth(date_of_birth: date | None, as_of: date) -> tuple[int | None, int | str | None]:
    """``(birth_year, age)``: over 89 the age is ``90+`` and the year, which would tell it, is dropped."""
    age = age_on(date_of_birth, as_of) if date_of_birth is not None else None
    if date_of_birth is None or age is None:
        return None, None
    if age > OLDEST_EXPORTED_AGE:
        return None, AGE_CATEGORY_OVER_89
    return date_of_birth.year, age


# --- sex ---------------------------------------------------------------------------------

_SEX = {
    "female": "female",
    "f": "female",
    "woman": "female",
    "male": "male",
    "m": "male",
    "man": "male",
    "other": "other",
    "intersex": "other",
    "x": "other",
    "unknown": "unknown",
    "u": "unknown",
}


def normalize_sex(sex: str | None) -> str:
    """One of ``female``, ``male``, ``other``, ``unknown``: a free-text value never passes through."""
    return _SEX.get((sex or "").strip().lower(), "unknown")


# --- records --------------------------------------------------------------------------------


def new_research_id() -> str:
    """A research id drawn from ``secrets``: derived from nothing about anyone (164.514(c))."""
    return RESEARCH_ID_PREFIX + "".join(secrets.choice(RESEARCH_ID_ALPHABET) for _ in range(RESEARCH_ID_LENGTH))


class ResearchIds:
    """Hands out research ids for one export, never the same twice within it."""

    def __init__(self) -> None:
        self._issued: set[str] = set()

    def issue(self) -> str:
        """A fresh random id, unique in this export."""
        while (candidate := new_research_id()) in self._issued:
            continue  # 80 random bits: practically never taken
        self._issued.add(candidate)
        return candidate


def _finite(value: Decimal | None) -> Decimal | None:
    return value if value is not None and value.is_finite() else None


def deidentify_observation(observation: ObservationInput) -> DeidentifiedObservation | None:
    """The coded, dated-to-the-year part of an observation; None when its code is not a known, valid code.

    ``display``, ``value_text`` and ``note`` are free text and never pass.
    """
    coded = generalize_code(observation.get("code_system"), observation.get("code"))
    if coded is None:
        return None
    unit = (observation.get("unit") or "").strip()
    effective = observation.get("effective_date")
    return {
        "code_system": coded[0],
        "code": coded[1],
        "value_number": _finite(observation.get("value_number")),
        "unit": unit if is_ucum_unit(unit) else None,
        "effective_year": effective.year if effective is not None else None,
    }


def deidentify_participant(participant: ParticipantInput, *, research_id: str, as_of: date) -> DeidentifiedRecord:
    """The Safe Harbor record of a participant on the export date ``as_of``.

    Args:
        participant: The participant's stored values and observations.
        research_id: The random id this export gives the participant (see :class:`ResearchIds`).
        as_of: The export date, at which ages are computed.

    Returns:
        Only what Safe Harbor lets through: sex, birth year and age (``90+``
        over 89), state, ZIP3, and coded observations dated to the year.
    """
    birth_year, age = generalize_birth(participant.get("date_of_birth"), as_of)
    observations = [deidentify_observation(item) for item in participant.get("observations", ())]
    return {
        "research_id": research_id,
        "sex": normalize_sex(participant.get("sex")),
        "birth_year": birth_year,
        "age": age,
        "state": normalize_state(participant.get("state")),
        "zip3": generalize_zip(participant.get("postal_code")),
        "observations": [item for item in observations if item is not None],
    }
