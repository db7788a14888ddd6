"""Observation codes: only known code systems, and only codes their own check digits accept."""

from __future__ import annotations

import pytest

from services.exports.terminology import generalize_code, luhn_check_digit, verhoeff_valid


@pytest.mark.parametrize(
    ("system", "code", "expected"),
    [
        ("http://loinc.org", "2345-7", ("http://loinc.org", "2345-7")),
        ("LOINC", " 718-7 ", ("http://loinc.org", "718-7")),
        ("loinc", "2345-8", None),  # wrong check digit
        ("http://snomed.info/sct", "38341003", ("http://snomed.info/sct", "38341003")),
        ("snomed", "38341004", None),  # fails Verhoeff
        ("snomed", "38341013", None),  # not a concept's partition
        ("icd-10-cm", "E11.9", ("http://hl7.org/fhir/sid/icd-10-cm", "E11.9")),
        ("icd-10-cm", "Smith", None),
        ("rxnorm", "860975", ("http://www.nlm.nih.gov/research/umls/rxnorm", "860975")),
        ("http://example.org/codes", "A1", None),
        ("", "2345-7", None),
        (None, None, None),
    ],
)
def test_observation_codes_pass_only_for_known_systems_and_well_formed_codes(
    system: str | None, code: str | None, expected: tuple[str, str] | None
) -> None:
    assert generalize_code(system, code) == expected


def test_the_check_digit_schemes_match_published_codes() -> None:
    assert [luhn_check_digit(number) for number in ("2345", "718", "4548", "12345")] == [7, 7, 4, 5]
    assert all(verhoeff_valid(code) for code in ("38341003", "22298006", "73211009", "271649006"))
    assert not verhoeff_valid("22298007")
