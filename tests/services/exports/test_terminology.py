"""Observation codes: known code systems, codes their check digits accept, never an age or a date, a value set."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_django import Settings

from services.exports.terminology import (
    PERSONAL_DATE_AND_AGE_CODES,
    VALUE_SET_FILE,
    CodeDecision,
    DropReason,
    code_for_export,
    generalize_code,
    load_value_set,
    luhn_check_digit,
    value_set,
    verhoeff_valid,
)


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


# --- what an export does with a code -------------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "code", "expected"),
    [
        ("loinc", "2345-7", CodeDecision(("http://loinc.org", "2345-7"))),
        ("loinc", "5550142-3", CodeDecision(None, DropReason.NOT_IN_VALUE_SET)),  # a phone number, Luhn-valid
        ("rxnorm", "19550312", CodeDecision(None, DropReason.NOT_IN_VALUE_SET)),  # a birth date, or an MRN
        ("rxnorm", "860975", CodeDecision(("http://www.nlm.nih.gov/research/umls/rxnorm", "860975"))),
        ("snomed", "38341003", CodeDecision(("http://snomed.info/sct", "38341003"), condition=True)),
        ("snomed", "27113001", CodeDecision(("http://snomed.info/sct", "27113001"))),  # body weight: a measurement
        ("loinc", "30525-0", CodeDecision(None, DropReason.PERSONAL_DATE_OR_AGE)),
        ("loinc", "21112-8", CodeDecision(None, DropReason.PERSONAL_DATE_OR_AGE)),
        ("snomed", "184099003", CodeDecision(None, DropReason.PERSONAL_DATE_OR_AGE)),
        ("icd-10-cm", "E11.9", CodeDecision(("http://hl7.org/fhir/sid/icd-10-cm", "E11.9"), condition=True)),
        (
            "icd-10-cm",
            "E11.65",
            CodeDecision(("http://hl7.org/fhir/sid/icd-10-cm", "E11"), generalised=True, condition=True),
        ),
        ("icd-10", "J45", CodeDecision(("http://hl7.org/fhir/sid/icd-10", "J45"), condition=True)),
        ("icd-10-cm", "Z99.1234", CodeDecision(None, DropReason.NOT_IN_VALUE_SET)),  # Z99 is not listed
        ("loinc", "\uff12345-7", CodeDecision(None, DropReason.UNCODED)),  # a full-width digit
        ("local", "MRN0042137", CodeDecision(None, DropReason.UNCODED)),
    ],
)
def test_codes_pass_only_in_the_value_set_never_as_an_age_or_a_date_and_icd_10_is_cut_to_its_category(
    system: str, code: str, expected: CodeDecision
) -> None:
    assert code_for_export(system, code) == expected


def test_the_age_and_date_codes_are_well_formed_and_none_is_in_the_value_set() -> None:
    assert all(generalize_code(system, code) == (system, code) for system, code in PERSONAL_DATE_AND_AGE_CODES)
    assert all(meaning for meaning in PERSONAL_DATE_AND_AGE_CODES.values())
    assert value_set().keys().isdisjoint(PERSONAL_DATE_AND_AGE_CODES)


def test_the_shipped_value_set_is_well_formed_and_names_what_it_is() -> None:
    codes = load_value_set(VALUE_SET_FILE)

    assert ("http://loinc.org", "8867-4") in codes  # heart rate, which the demo records
    assert len(codes) > 50
    assert any("never exported" in line for line in VALUE_SET_FILE.read_text().splitlines() if line.startswith("#"))


def test_an_operator_extends_the_value_set_with_a_file_of_their_own(settings: Settings, tmp_path: Path) -> None:
    extra = tmp_path / "codes.csv"
    extra.write_text("system,code,meaning\nhttp://loinc.org,2339-0,Glucose in Blood\nrxnorm,197361,amlodipine 5 MG\n")
    assert code_for_export("rxnorm", "197361").reason == DropReason.NOT_IN_VALUE_SET

    settings.DEIDENTIFIED_EXPORT_EXTRA_CODES = str(extra)

    assert code_for_export("rxnorm", "197361").coded == ("http://www.nlm.nih.gov/research/umls/rxnorm", "197361")


@pytest.mark.parametrize(
    "rows",
    [
        "system,code,meaning\nloinc,2345-8,bad check digit\n",
        "system,code,meaning\nloinc,30525-0,Age\n",
        "code\n1\n",
        "system,code,meaning\nloinc,8339-4,Birth weight Measured\n",
        "system,code,meaning\nsnomed,57036006,Fetal gestational age\n",
        "system,code,meaning\nloinc,2339-0,Glucose on the date of admission\n",  # its meaning dates it
        "system,code,meaning\nloinc,2339-0,Patient age (years)\n",
        "system,code,meaning\nicd-10-cm,Z38.00,Single liveborn infant\n",  # perinatal: dates a birth
        "system,code,meaning,kind\nloinc,2339-0,Glucose,result\n",  # no such kind
    ],
)
def test_an_operators_value_set_that_is_malformed_or_lists_an_age_code_is_refused(rows: str, tmp_path: Path) -> None:
    extra = tmp_path / "codes.csv"
    extra.write_text(rows)

    with pytest.raises(ValueError, match=r"value set|age or a date|perinatal"):
        load_value_set(extra)
