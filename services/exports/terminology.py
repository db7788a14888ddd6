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
3. **The value set**: only the codes listed in ``data/value_set.csv``
   (shipped) or in the operator's ``DEIDENTIFIED_EXPORT_EXTRA_CODES`` file
   pass (else ``not_in_value_set``). An ICD-10 code not listed is cut to its
   three-character category (``E11.65`` to ``E11``) when the value set lists
   that category, else dropped: no list of every ICD-10(-CM) category is
   shipped, and an unlisted letter-digit-character triple (``S0M``) is a
   channel of about 13 bits, not a category.

The value set marks each code's ``kind``: a ``condition`` (every ICD-10 code,
and SNOMED CT disorders and findings) is exported with no value and no unit,
since a diagnosis has no result and a number beside one is a channel (``R54``
with 97 years); a ``measurement`` or ``drug`` keeps them. ICD-10 chapter P
(perinatal conditions) and ``Z38`` (liveborn infants) date the birth, so they
are dropped as ``personal_date_or_age`` like the codes of check 2.

Code systems are named by their standard URIs.
"""

from __future__ import annotations

import csv
import hashlib
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
_ICD_10_SYSTEMS = frozenset({ICD_10_CM, ICD_10})

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
    (SNOMED_CT, "397659008"): "Age",
    (LOINC, "39016-1"): "Age at death",
    (LOINC, "63900-5"): "Current age or age at death",
    (LOINC, "21611-9"): "Age - estimated",
    (LOINC, "8339-4"): "Birth weight Measured",
    (LOINC, "11884-4"): "Gestational age Estimated",
    (LOINC, "18185-9"): "Gestational age",
    (LOINC, "49051-6"): "Gestational age in weeks",
    (SNOMED_CT, "57036006"): "Fetal gestational age",
}
# ICD-10 codes that date a birth: chapter P (conditions of the perinatal period) and Z38 (liveborn infants).
PERINATAL_ICD_10 = re.compile(r"P[0-9]{2}.*|Z38.*", re.ASCII)
# A meaning in an operator's file that says its code ages or dates the person: the file is refused.
_PERSONAL_MEANING = re.compile(
    r"\b(?:age|ages|aged|date|dates|dated|birth|born|death|died|dead|deceased|gestation\w*)\b", re.I
)


class CodeKind(StrEnum):
    """What a value-set code names: a condition carries no value or unit; the others keep theirs."""

    CONDITION = "condition"
    MEASUREMENT = "measurement"
    DRUG = "drug"


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
    condition: bool = False


ValueSet = dict[tuple[str, str], CodeKind]


def _kind(system: str, stated: str | None) -> CodeKind | None:
    """A row's kind: ICD-10 is always a condition; unstated, SNOMED CT is one too (no value is the safe side)."""
    if system in _ICD_10_SYSTEMS:
        return CodeKind.CONDITION
    if not (stated or "").strip():
        return {SNOMED_CT: CodeKind.CONDITION, RXNORM: CodeKind.DRUG}.get(system, CodeKind.MEASUREMENT)
    try:
        return CodeKind((stated or "").strip().lower())
    except ValueError:
        return None


def _row(row: dict[str, str | None]) -> tuple[tuple[str, str], CodeKind] | None:
    coded = generalize_code(row.get("system"), row.get("code"))
    kind = None if coded is None else _kind(coded[0], row.get("kind"))
    return None if coded is None or kind is None else (coded, kind)


def _parse_value_set(name: str, text: str) -> ValueSet:
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    entries = [_row(row) for row in rows]
    if not rows or None in entries:
        raise ValueError(f"{name} is not a value set of well-formed codes (columns system,code,meaning,kind)")
    pairs: ValueSet = dict(entry for entry in entries if entry is not None)
    if pairs.keys() & PERSONAL_DATE_AND_AGE_CODES.keys() or any(
        _PERSONAL_MEANING.search(str(row.get("meaning") or "")) for row in rows
    ):
        raise ValueError(f"{name} lists a code that is an age or a date of the person")
    if any(PERINATAL_ICD_10.fullmatch(code) for system, code in pairs if system in _ICD_10_SYSTEMS):
        raise ValueError(f"{name} lists a perinatal ICD-10 code, which dates a birth")
    return pairs


def load_value_set(path: Path) -> ValueSet:
    """The codes of a value-set CSV and their kinds (``system,code,meaning[,kind]``; ``#`` lines are notes).

    Raises:
        ValueError: A row is not a well-formed code of a known system or names an unknown kind; a code
            dates or ages the person, or its stated meaning says it does (an age, a date, a birth, a death,
            a gestation); or it lists a perinatal ICD-10 code.
    """
    return _parse_value_set(path.name, path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class ResolvedValueSet:
    """The value set one build uses, and the files it came from (name, origin and SHA-256 of each)."""

    codes: ValueSet
    files: tuple[dict[str, str], ...]


@cache
def _value_set_file(path: str, modified_ns: int, origin: str) -> tuple[ValueSet, dict[str, str]]:
    raw = Path(path).read_bytes()
    codes = _parse_value_set(Path(path).name, raw.decode("utf-8"))
    return codes, {"file": Path(path).name, "origin": origin, "sha256": hashlib.sha256(raw).hexdigest()}


def resolved_value_set() -> ResolvedValueSet:
    """The shipped value set with the operator's ``DEIDENTIFIED_EXPORT_EXTRA_CODES`` file, if one is set.

    Each file is read again when it changes; the build resolves this once and
    names every file's SHA-256 in the manifest.
    """
    extra = str(settings.DEIDENTIFIED_EXPORT_EXTRA_CODES or "")
    origins = [(VALUE_SET_FILE, "shipped")] + ([(Path(extra), "DEIDENTIFIED_EXPORT_EXTRA_CODES")] if extra else [])
    loaded = [_value_set_file(str(path), path.stat().st_mtime_ns, origin) for path, origin in origins]
    codes: ValueSet = {}
    for part, _ in loaded:
        codes.update(part)
    return ResolvedValueSet(codes=codes, files=tuple(provenance for _, provenance in loaded))


def value_set() -> ValueSet:
    """The codes of :func:`resolved_value_set`."""
    return resolved_value_set().codes


def code_for_export(code_system: str | None, code: str | None, codes: ValueSet | None = None) -> CodeDecision:
    """Whether an observation's code may be exported, as what, or why not (see the module's three checks).

    ``codes`` is the value set the build resolved once (:func:`value_set` when not given).
    """
    coded = generalize_code(code_system, code)
    if coded is None:
        return CodeDecision(None, DropReason.UNCODED)
    icd_10 = coded[0] in _ICD_10_SYSTEMS
    if coded in PERSONAL_DATE_AND_AGE_CODES or (icd_10 and PERINATAL_ICD_10.fullmatch(coded[1])):
        return CodeDecision(None, DropReason.PERSONAL_DATE_OR_AGE)
    codes = value_set() if codes is None else codes
    category = (coded[0], coded[1][:ICD_10_CATEGORY_LENGTH])
    kept = coded if coded in codes else category if icd_10 and category in codes else None
    if kept is None:
        return CodeDecision(None, DropReason.NOT_IN_VALUE_SET)
    return CodeDecision(kept, generalised=kept != coded, condition=codes[kept] is CodeKind.CONDITION)
