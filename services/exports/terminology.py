"""Observation codes an export may carry: known code systems, well-formed codes, and a value set.

A code is typed by hand, so a value under a known code system may be free
text or an identifier typed where a code belongs (a numeric MRN passes every
RxNorm syntax check; a telephone number with the right Luhn digit is a
"valid" LOINC code). Three checks stand between a code and an export:

1. **Structure**, the code systems' own: LOINC's mod-10 (Luhn) check digit,
   SNOMED CT's Verhoeff check digit and concept partition, the shapes of
   ICD-10 and RxNorm codes (ASCII digits only). A code that fails is
   ``uncoded``.
2. **Meaning that dates or ages the person**: :data:`PERSONAL_DATE_AND_AGE_CODES`
   lists codes whose value is an age, a birth date, a date of death or another
   date of the person; their observations are dropped
   (``personal_date_or_age``), since their value would undo the year-only and
   ``90+`` rules of 164.514(b)(2)(i)(C).
3. **The value set**: LOINC, SNOMED CT and RxNorm codes are numbers, so only
   the codes listed in ``data/value_set.csv`` (shipped) or in the operator's
   ``DEIDENTIFIED_EXPORT_EXTRA_CODES`` file pass (else ``not_in_value_set``).
   ICD-10 codes not listed are cut to their three-character category
   (``E11.9`` to ``E11``): a letter and two digits carry no identifier.

Code systems are named by their standard URIs.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

from django.conf import settings

LOINC = "http://loinc.org"
SNOMED_CT = "http://snomed.info/sct"
ICD_10_CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD_10 = "http://hl7.org/fhir/sid/icd-10"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_CODE_SYSTEM_ALIASES = {
    LOINC: LOINC,
    "loinc": LOINC,
    SNOMED_CT: SNOMED_CT,
    "snomed": SNOMED_CT,
    "snomed-ct": SNOMED_CT,
    "sct": SNOMED_CT,
    ICD_10_CM: ICD_10_CM,
    "icd-10-cm": ICD_10_CM,
    "icd10cm": ICD_10_CM,
    ICD_10: ICD_10,
    "icd-10": ICD_10,
    "icd10": ICD_10,
    RXNORM: RXNORM,
    "rxnorm": RXNORM,
}
_ICD_10 = re.compile(r"[A-TV-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?", re.ASCII)
_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 7, 6, 8, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_SNOMED_CONCEPT_PARTITIONS = ("00", "10")


def luhn_check_digit(digits: str) -> int:
    """The mod-10 check digit LOINC appends to a code's number (the Luhn scheme)."""
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value  # noqa: PLR2004 - a doubled digit's digit sum
    return (10 - total % 10) % 10


def verhoeff_valid(digits: str) -> bool:
    """Whether ``digits`` end in a valid Verhoeff check digit (as every SNOMED CT identifier does)."""
    check = 0
    for position, digit in enumerate(reversed(digits)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[position % 8][int(digit)]]
    return check == 0


def _loinc_valid(code: str) -> bool:
    match = re.fullmatch(r"([0-9]{1,7})-([0-9])", code)
    return match is not None and luhn_check_digit(match.group(1)) == int(match.group(2))


def _snomed_valid(code: str) -> bool:
    return (
        re.fullmatch(r"[0-9]{6,18}", code) is not None
        and code[-3:-1] in _SNOMED_CONCEPT_PARTITIONS
        and verhoeff_valid(code)
    )


def _icd_10_valid(code: str) -> bool:
    return _ICD_10.fullmatch(code) is not None


def _rxnorm_valid(code: str) -> bool:
    return re.fullmatch(r"[0-9]{1,8}", code) is not None


_CODE_CHECKS: dict[str, Callable[[str], bool]] = {
    LOINC: _loinc_valid,
    SNOMED_CT: _snomed_valid,
    ICD_10_CM: _icd_10_valid,
    ICD_10: _icd_10_valid,
    RXNORM: _rxnorm_valid,
}


def generalize_code(code_system: str | None, code: str | None) -> tuple[str, str] | None:
    """``(system URI, code)`` for a known code system and a well-formed code (check digits included), else None.

    Anything else might be free text typed where a code belongs, so the
    observation it belongs to is dropped rather than exported.
    """
    system = _CODE_SYSTEM_ALIASES.get((code_system or "").strip().lower())
    value = (code or "").strip()
    if system is None or not _CODE_CHECKS[system](value):
        return None
    return system, value


# --- what an export does with a code ----------------------------------------------------------

VALUE_SET_FILE = Path(__file__).resolve().parent / "data" / "value_set.csv"
ICD_10_CATEGORY_LENGTH = 3
_VALUE_SET_SYSTEMS = frozenset({LOINC, SNOMED_CT, RXNORM})  # numeric codes: listed, or dropped

# Codes whose value is an age or a date of the person: never exported, whatever the value set says.
PERSONAL_DATE_AND_AGE_CODES: dict[tuple[str, str], str] = {
    (LOINC, "30525-0"): "Age",
    (LOINC, "21612-7"): "Age - Reported",
    (LOINC, "29553-5"): "Age calculated",
    (LOINC, "21112-8"): "Birth date",
    (LOINC, "81956-5"): "Date and time of death",
    (LOINC, "8665-2"): "Last menstrual period start date",
    (LOINC, "11778-8"): "Delivery date, estimated",
    (LOINC, "11368-8"): "Illness or injury onset date and time",
    (SNOMED_CT, "424144002"): "Current chronological age",
    (SNOMED_CT, "184099003"): "Date of birth",
    (SNOMED_CT, "399753006"): "Date of death",
    (SNOMED_CT, "445518008"): "Age at onset of clinical finding",
}


class DropReason(StrEnum):
    """Why an observation was left out of an export (counted in the manifest, one count per reason)."""

    UNCODED = "uncoded"
    PERSONAL_DATE_OR_AGE = "personal_date_or_age"
    NOT_IN_VALUE_SET = "not_in_value_set"
    VALUE_OUT_OF_RANGE = "value_out_of_range"


@dataclass(frozen=True)
class CodeDecision:
    """What an export does with one observation's code: keep ``coded``, or drop for ``reason``."""

    coded: tuple[str, str] | None
    reason: DropReason | None = None
    generalised: bool = False


def load_value_set(path: Path) -> frozenset[tuple[str, str]]:
    """The ``(system, code)`` pairs of a value-set CSV (``system,code,meaning``; ``#`` lines are notes).

    Raises:
        ValueError: A row is not a well-formed code of a known system, or dates or ages the person.
    """
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    codes = {generalize_code(row.get("system"), row.get("code")) for row in rows}
    if not rows or None in codes:
        raise ValueError(f"{path.name} is not a value set of well-formed codes (columns system,code,meaning)")
    pairs = frozenset(code for code in codes if code is not None)
    if pairs & PERSONAL_DATE_AND_AGE_CODES.keys():
        raise ValueError(f"{path.name} lists a code that is an age or a date of the person")
    return pairs


@cache
def _value_set(paths: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    return frozenset().union(*(load_value_set(Path(path)) for path in paths))


def value_set() -> frozenset[tuple[str, str]]:
    """The shipped value set, with the operator's ``DEIDENTIFIED_EXPORT_EXTRA_CODES`` file if one is set."""
    extra = str(settings.DEIDENTIFIED_EXPORT_EXTRA_CODES or "")
    return _value_set((str(VALUE_SET_FILE), extra) if extra else (str(VALUE_SET_FILE),))


def code_for_export(code_system: str | None, code: str | None) -> CodeDecision:
    """Whether an observation's code may be exported, as what, or why not (see the module's three checks)."""
    coded = generalize_code(code_system, code)
    if coded is None:
        return CodeDecision(None, DropReason.UNCODED)
    if coded in PERSONAL_DATE_AND_AGE_CODES:
        return CodeDecision(None, DropReason.PERSONAL_DATE_OR_AGE)
    if coded in value_set():
        return CodeDecision(coded)
    if coded[0] in _VALUE_SET_SYSTEMS:
        return CodeDecision(None, DropReason.NOT_IN_VALUE_SET)
    category = coded[1][:ICD_10_CATEGORY_LENGTH]
    return CodeDecision((coded[0], category), generalised=category != coded[1])
