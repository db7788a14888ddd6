r"""De-identification of exports (45 CFR 164.514(b)(2)) as pure functions over plain dicts.

Nothing here touches the database, the keys or the clock: the caller hands in
a participant (and their observations) as plain values and the export year,
and gets back the record an export may carry. That keeps the rules small
enough to read against the regulation and lets property tests throw arbitrary
participants at them.

The approach is an allowlist: a record is built only from the few values that
Safe Harbor lets through, each generalised as the rule says. Everything else,
free text included, never reaches the record, so a new field on the models
cannot leak by default.

- **Dates** (C): the birth date becomes its year, and the age is year
  arithmetic (export year minus birth year), never the completed age on the
  export day. So birth year and age together say nothing the birth year does
  not, and two exports on different days of a year carry the same values: no
  function of (birth year, age, export date) narrows a birthday inside its
  year. A birth year 90 or more years before the export year (an age that is
  or could be over 89) becomes ``90+`` with no year. Observation dates become
  their year (:func:`generalize_year`): a year at or before export year - 90
  is the one category ``<=YYYY`` (such a year is "indicative of such age",
  and a 90+ participant's observations would otherwise bound the birth
  year), a year before the birth year or after the export year is no year.
- **Geography** (B): a state as a USPS code; a ZIP code's first three digits
  only where the ZIP3 table (:mod:`services.exports.zip3`) allows them, else
  ``000``.
- **Coded fields** (R, and every identifier that could be typed into one):
  codes pass only as :mod:`services.exports.terminology` decides (structure,
  no code that dates or ages the person, a value set), units only as
  :mod:`services.exports.ucum` allows, and numbers rounded to
  :data:`VALUE_SIGNIFICANT_DIGITS` significant digits below
  :data:`VALUE_LIMIT`.

Every digit class is ASCII (``[0-9]``): ``\d`` would take other scripts' digits.
Small cells (164.514(b)(2)(ii)) are :mod:`services.exports.cells`'s.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import TypedDict

from services.exports.terminology import DropReason, ResolvedValueSet, ValueSet, code_for_export, resolved_value_set
from services.exports.ucum import is_ucum_unit
from services.exports.zip3 import Zip3Table, zip3_table

SUPPRESSED_ZIP3 = "000"
OLDEST_EXPORTED_AGE = 89  # 164.514(b)(2)(i)(C): ages over 89 are aggregated into one category
VALUE_SIGNIFICANT_DIGITS = 4  # the precision lab results are reported at; too few digits for an MRN or a phone
VALUE_LIMIT = Decimal(10) ** 5  # a value this large is no result the value set holds (in its UCUM units): dropped
CODE_GENERALISED = "code_generalised_to_category"
AGE_CATEGORY_OVER_89 = "90+"
OLDEST_YEAR_PREFIX = "<="  # an observation year at or before export year - 90: "<=1936" in 2026
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
    effective_year: int | str | None


class DeidentifiedRecord(TypedDict):
    """What an export carries of one participant."""

    research_id: str
    sex: str
    birth_year: int | str | None
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
        "street address and city removed; state kept as a USPS code; ZIP code cut to its first three digits "
        "only where the ZIP3 table (see zip3_table) allows the prefix, else 000 (so is anything not a US ZIP)",
    ),
    IdentifierKind(
        "c",
        "All elements of dates (except year) related to an individual; ages over 89",
        Handling.GENERALIZED,
        "date of birth to the birth year, age as export year minus birth year (no day or month of the export "
        "enters it); 90 or more years before the export year exported as 90+ with no birth year; observation "
        "dates to their year, a year at or before export year - 90 as the one category <=YYYY, a year before "
        "the birth year or after the export year as none; codes meaning an age or a date of the person, and "
        "perinatal codes (ICD-10 chapter P, Z38), dropped; record timestamps not exported",
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
        "codes kept only when well formed and in the export value set (ICD-10 outside it cut to its category "
        "when the value set lists the category, else dropped); conditions carry no value and no unit; "
        "units only when UCUM without free digits, values rounded to 4 significant digits below 100,000; "
        "sex reduced to female, male, other or unknown",
    ),
)


def identifier_handling() -> list[dict[str, str]]:
    """The manifest's list of the eighteen identifier kinds and how each was handled."""
    return [kind.as_dict() for kind in IDENTIFIER_KINDS]


@dataclass(frozen=True)
class ExportRules:
    """What one build reads once and applies to every record: the ZIP3 table and the value set."""

    zip3: Zip3Table
    value_set: ResolvedValueSet

    @property
    def codes(self) -> ValueSet:
        """The value set's codes and their kinds."""
        return self.value_set.codes

    @classmethod
    def current(cls) -> ExportRules:
        """The tables as configured now."""
        return cls(zip3=zip3_table(), value_set=resolved_value_set())


# --- geography -------------------------------------------------------------------------

# USPS codes of the states, DC and the territories: a state is the smallest unit Safe Harbor keeps.
_STATES = "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND"
_TERRITORIES_AND_REST = "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI"
STATE_CODES = frozenset(f"{_STATES} {_TERRITORIES_AND_REST}".split(" "))
_ZIP = re.compile(r"([0-9]{3})[0-9]{2}(?:-?[0-9]{4})?", re.ASCII)


def generalize_zip(postal_code: str | None, table: Zip3Table | None = None) -> str:
    """The first three digits of a US ZIP code where the ZIP3 table allows them; else ``000``.

    ``table`` is the one the build resolved once (:func:`zip3_table` when not given).
    """
    match = _ZIP.fullmatch((postal_code or "").strip())
    if match is None or match.group(1) not in (zip3_table() if table is None else table).allowed:
        return SUPPRESSED_ZIP3
    return match.group(1)


def normalize_state(state: str | None) -> str | None:
    """A USPS state code, or None for anything else."""
    code = (state or "").strip().upper()
    return code if code in STATE_CODES else None


# --- dates and ages ------------------------------------------------------------------------


def generalize_birth(date_of_birth: date | None, export_year: int) -> tuple[int | None, int | str | None]:
    """``(birth_year, age)`` with the age as ``export_year - birth_year``: year arithmetic only.

    Nothing of the birth date but its year enters, nor anything of the export
    date but its year, so no combination of the two values narrows a birthday
    inside its year. A birth year 90 or more years back is ``(None, "90+")``:
    such a person is, or within the year will be, over 89. A birth year after
    the export year is no age at all.
    """
    if date_of_birth is None or date_of_birth.year > export_year:
        return None, None
    age = export_year - date_of_birth.year
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


def bounded_value(value: Decimal | None) -> tuple[Decimal | None, bool]:
    """``(value, in range)``: a finite value rounded to :data:`VALUE_SIGNIFICANT_DIGITS` significant digits.

    A number is the one field a code cannot constrain, so it is the channel an
    identifier would take (a 9-digit SSN or a 10-digit phone number as the
    value of a glucose result). Four significant digits are what laboratory
    results are reported at; a value of 100,000 or more (or a date written as
    a number, ``19550312``) is no result of the value set in its UCUM units,
    and drops its observation. So an exported value holds at most four
    significant digits and five digits in all: no room for the six or more
    digits of an MRN, a phone, an SSN, an account or a plan number. A missing
    or non-finite value is None, in range.
    """
    if value is None or not value.is_finite():
        return None, True
    if value.is_zero():
        return Decimal(0), True
    rounded = value.quantize(Decimal(1).scaleb(value.adjusted() - VALUE_SIGNIFICANT_DIGITS + 1))
    if abs(value) >= VALUE_LIMIT or abs(rounded) >= VALUE_LIMIT:
        return None, False
    return rounded, True


@dataclass(frozen=True)
class ObservationOutcome:
    """An observation as exported, or why it was dropped; ``code_generalised`` when its code was cut."""

    observation: DeidentifiedObservation | None
    dropped: DropReason | None = None
    code_generalised: bool = False


def generalize_year(year: int | None, *, export_year: int, birth_year: int | None) -> int | str | None:
    """An observation's year as exported: the year, the category ``<=YYYY``, or None.

    A year at or before ``export_year - 90`` is ``<=YYYY`` (YYYY being that
    year) whoever the participant is: such a year is indicative of an age over
    89, and for a 90+ participant it would bound the birth year. A year after
    the export year, or before the participant's birth year (``birth_year``,
    the stored one, known also for 90+), is None: no year, no free digits.
    Years between are a participant's own dates reduced to the year, which
    164.514(b)(2)(i)(C) keeps. Perinatal codes, which would date the birth
    exactly, are dropped by :func:`services.exports.terminology.code_for_export`.
    """
    cutoff = export_year - OLDEST_EXPORTED_AGE - 1
    if year is None or year > export_year:
        return None
    if year <= cutoff:
        return f"{OLDEST_YEAR_PREFIX}{cutoff}"
    if birth_year is not None and year < birth_year:
        return None
    return year


def deidentify_observation(
    observation: ObservationInput,
    *,
    export_year: int,
    birth_year: int | None,
    codes: ValueSet | None = None,
) -> ObservationOutcome:
    """The coded, dated-to-the-year part of an observation, or the reason it is dropped.

    ``display``, ``value_text`` and ``note`` are free text and never pass. A
    condition (see :class:`services.exports.terminology.CodeKind`) carries no
    value and no unit. ``birth_year`` is the participant's stored one (see
    :func:`generalize_year`); ``codes`` the value set the build resolved once.
    """
    decision = code_for_export(observation.get("code_system"), observation.get("code"), codes)
    if decision.coded is None:
        return ObservationOutcome(None, decision.reason)
    value, in_range = bounded_value(None if decision.condition else observation.get("value_number"))
    if not in_range:
        return ObservationOutcome(None, DropReason.VALUE_OUT_OF_RANGE)
    unit = "" if decision.condition else (observation.get("unit") or "").strip()
    effective = observation.get("effective_date")
    exported: DeidentifiedObservation = {
        "code_system": decision.coded[0],
        "code": decision.coded[1],
        "value_number": value,
        "unit": unit if unit and is_ucum_unit(unit) else None,
        "effective_year": generalize_year(
            None if effective is None else effective.year, export_year=export_year, birth_year=birth_year
        ),
    }
    return ObservationOutcome(exported, code_generalised=decision.generalised)


def _observations(
    items: Sequence[ObservationInput],
    tally: Counter[str] | None,
    *,
    export_year: int,
    birth_year: int | None,
    codes: ValueSet | None,
) -> list[DeidentifiedObservation]:
    kept: list[DeidentifiedObservation] = []
    for item in items:
        outcome = deidentify_observation(item, export_year=export_year, birth_year=birth_year, codes=codes)
        if tally is not None and outcome.dropped is not None:
            tally[str(outcome.dropped)] += 1
        if tally is not None and outcome.code_generalised:
            tally[CODE_GENERALISED] += 1
        if outcome.observation is not None:
            kept.append(outcome.observation)
    return kept


def deidentify_participant(
    participant: ParticipantInput,
    *,
    research_id: str,
    export_year: int,
    tally: Counter[str] | None = None,
    rules: ExportRules | None = None,
) -> DeidentifiedRecord:
    """The de-identified record of a participant, for an export made in ``export_year``.

    Args:
        participant: The participant's stored values and observations.
        research_id: The random id this export gives the participant (see :class:`ResearchIds`).
        export_year: The export's year, from which ages are year arithmetic.
        tally: Where to count dropped observations by :class:`DropReason` (and cut codes), if given.
        rules: The ZIP3 table and value set the build resolved once (read now when not given).

    Returns:
        Only what Safe Harbor lets through: sex, birth year and age (``90+``
        with no year for 90 or more years back), state, ZIP3, and coded
        observations dated to the year. Small cells are not handled here.
    """
    rules = ExportRules.current() if rules is None else rules
    born = participant.get("date_of_birth")
    birth_year, age = generalize_birth(born, export_year)
    return {
        "research_id": research_id,
        "sex": normalize_sex(participant.get("sex")),
        "birth_year": birth_year,
        "age": age,
        "state": normalize_state(participant.get("state")),
        "zip3": generalize_zip(participant.get("postal_code"), rules.zip3),
        "observations": _observations(
            participant.get("observations", ()),
            tally,
            export_year=export_year,
            birth_year=None if born is None else born.year,
            codes=rules.codes,
        ),
    }
