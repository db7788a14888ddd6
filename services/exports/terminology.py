"""Observation codes an export may carry: known code systems, and codes well formed in them.

Not a HIPAA rule: a value that is not a well-formed code of a known system
might be free text typed where a code belongs, so Safe Harbor
(:mod:`services.exports.safe_harbor`) drops its observation. The checks are
the code systems' own: LOINC's mod-10 (Luhn) check digit, SNOMED CT's
Verhoeff check digit and concept partition, and the shapes of ICD-10 and
RxNorm codes. Code systems are named by their standard URIs.
"""

from __future__ import annotations

import re
from collections.abc import Callable

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
_ICD_10 = re.compile(r"[A-TV-Z]\d[0-9A-Z](?:\.[0-9A-Z]{1,4})?")
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
    match = re.fullmatch(r"(\d{1,7})-(\d)", code)
    return match is not None and luhn_check_digit(match.group(1)) == int(match.group(2))


def _snomed_valid(code: str) -> bool:
    return (
        re.fullmatch(r"\d{6,18}", code) is not None
        and code[-3:-1] in _SNOMED_CONCEPT_PARTITIONS
        and verhoeff_valid(code)
    )


def _icd_10_valid(code: str) -> bool:
    return _ICD_10.fullmatch(code) is not None


def _rxnorm_valid(code: str) -> bool:
    return re.fullmatch(r"\d{1,8}", code) is not None


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
