"""Issue 16 items 1 and 2: condition codes carry no value or unit, ICD-10 categories are real, years keep 90+.

Each test here failed on the exporter before the fix: ``R54`` with the value
97 and the unit ``a`` (an age of 97) was exported; any ICD-10-shaped category
(``S0M``, ``I0T``, ``H00``) passed; an observation year told the birth year of
a 90+ participant (``Z38.00`` dated on the day of birth); years from 1 to 9999
were written as they stood.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from services.exports.safe_harbor import (
    ObservationInput,
    ParticipantInput,
    deidentify_observation,
    deidentify_participant,
    generalize_year,
    new_research_id,
)
from services.exports.terminology import ICD_10, ICD_10_CM, SNOMED_CT, DropReason, code_for_export

EXPORT_YEAR = 2026
CUTOFF = f"<={EXPORT_YEAR - 90}"


def observation(**fields: Any) -> ObservationInput:
    base: dict[str, Any] = {
        "code_system": "http://loinc.org",
        "code": "2345-7",
        "value_number": Decimal("5.4"),
        "unit": "mmol/L",
        "effective_date": date(2025, 3, 14),
    }
    return {**base, **fields}  # type: ignore[typeddict-item]


def exported(item: ObservationInput, *, born: int | None = 1970) -> Any:
    return deidentify_observation(item, export_year=EXPORT_YEAR, birth_year=born).observation


# --- item 1: condition codes ---------------------------------------------------------------------


def test_attack_an_age_of_97_under_an_icd_10_condition_code_is_not_exported() -> None:
    """The review's repro: ``R54`` (age-related physical debility) with 97 and the unit ``a`` (years)."""
    item = observation(code_system="icd10", code="R54", value_number=Decimal(97), unit="a")

    result = exported(item)

    assert result is None or (result["value_number"], result["unit"]) == (None, None)


@pytest.mark.parametrize(
    ("system", "code"),
    [("icd-10-cm", "E11.9"), ("icd-10-cm", "E11.65"), ("snomed", "44054006"), ("snomed", "38341003")],
)
def test_a_condition_code_of_the_value_set_is_exported_without_its_value_and_unit(system: str, code: str) -> None:
    result = exported(observation(code_system=system, code=code, value_number=Decimal("19.55"), unit="mg"))

    assert result is not None
    assert (result["value_number"], result["unit"]) == (None, None)


def test_a_measurement_keeps_its_value_and_unit() -> None:
    result = exported(observation())

    assert result is not None
    assert (result["value_number"], result["unit"]) == (Decimal("5.400"), "mmol/L")


@pytest.mark.parametrize("code", ["S0M", "I0T", "H00", "Q9Z", "S0M.1", "X99.ZZZZ", "E99"])
def test_attack_an_icd_10_shaped_category_that_is_no_listed_category_is_dropped(code: str) -> None:
    """Review item 1: any letter-digit-char passed as a category, about 13 free bits per observation."""
    for system in ("icd10", "icd-10-cm"):
        decision = code_for_export(system, code)
        assert (decision.coded, decision.reason) == (None, DropReason.NOT_IN_VALUE_SET)


def test_an_icd_10_code_outside_the_value_set_is_cut_to_a_category_the_value_set_lists() -> None:
    decision = code_for_export("icd-10-cm", "E11.65")

    assert decision.coded == (ICD_10_CM, "E11")
    assert decision.generalised
    assert decision.condition


def test_conditions_are_marked_by_the_value_set() -> None:
    assert code_for_export("snomed", "44054006").condition  # diabetes mellitus type 2: a disorder
    assert not code_for_export("snomed", "27113001").condition  # body weight: an observable, with its value
    assert code_for_export("icd10", "I10").coded == (ICD_10, "I10")
    assert code_for_export("icd10", "I10").condition
    assert SNOMED_CT


# --- item 2: observation years -------------------------------------------------------------------------


def test_attack_a_perinatal_code_dated_on_the_birthday_does_not_tell_a_90_plus_participants_birth_year() -> None:
    """The review's repro: DOB 1931-03-04 and ``Z38.00`` dated 1931-03-04 gave 90+ with 1931 beside it."""
    participant: ParticipantInput = {
        "date_of_birth": date(1931, 3, 4),
        "observations": [
            observation(code_system="icd-10-cm", code="Z38.00", effective_date=date(1931, 3, 4)),
            observation(effective_date=date(1931, 3, 4)),
            observation(effective_date=date(1937, 6, 1)),
        ],
    }

    record = deidentify_participant(participant, research_id=new_research_id(), export_year=EXPORT_YEAR)

    assert record["age"] == "90+"
    assert [(item["code"], item["effective_year"]) for item in record["observations"]] == [
        ("2345-7", CUTOFF),
        ("2345-7", 1937),
    ]
    assert "1931" not in repr(record)


@pytest.mark.parametrize(
    ("system", "code"),
    [("icd-10-cm", "Z38.00"), ("icd10", "Z38"), ("icd-10-cm", "P07.30"), ("icd10", "P22.0"), ("loinc", "8339-4")],
)
def test_perinatal_and_birth_codes_are_dropped_as_personal_dates(system: str, code: str) -> None:
    assert code_for_export(system, code).reason == DropReason.PERSONAL_DATE_OR_AGE


@pytest.mark.parametrize(
    ("year", "born", "expected"),
    [
        (EXPORT_YEAR - 90, None, CUTOFF),  # "indicative of such age": the year itself is never written
        (1, None, CUTOFF),
        (1, 1970, CUTOFF),
        (EXPORT_YEAR - 89, None, EXPORT_YEAR - 89),
        (1969, 1970, None),  # before the birth year: no year
        (1970, 1970, 1970),
        (EXPORT_YEAR, 1970, EXPORT_YEAR),
        (EXPORT_YEAR + 1, 1970, None),  # after the export: no year
        (9999, None, None),
    ],
)
def test_observation_years_at_or_before_export_year_minus_90_are_one_category(
    year: int, born: int | None, expected: int | str | None
) -> None:
    assert generalize_year(year, export_year=EXPORT_YEAR, birth_year=born) == expected


def test_year_one_and_year_9999_carry_no_free_digits() -> None:
    early = exported(observation(effective_date=date(1, 1, 1)))
    late = exported(observation(effective_date=date(9999, 12, 31)))

    assert early is not None
    assert late is not None
    assert (early["effective_year"], late["effective_year"]) == (CUTOFF, None)
