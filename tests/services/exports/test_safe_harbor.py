"""De-identification: generated participants never leave an identifier, nor a date inside a year, in an export record.

The tests whose names say a leak is closed (``..._leak_...`` in the HIPAA
review, issue 16, sections 1.1 to 1.3) fail on the code before the fix: the
birthday read from age, birth year and export date; repeated exports bisecting
it; dates, phone numbers and SSNs passing as units; LOINC Age and Birth-date
values; the 89/90 borderline year; full-width ZIP digits; numeric MRNs as
RxNorm codes; unpopulated prefixes passing the ZIP3 table.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
import uuid
from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django_tenants.utils import schema_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.exports.actions import Recipient, deidentified_export_build, deidentified_export_request
from services.exports.formats import CSV_COLUMNS, csv_lines, decimal_text, jsonl_lines
from services.exports.safe_harbor import (
    IDENTIFIER_KINDS,
    Handling,
    ObservationInput,
    ParticipantInput,
    ResearchIds,
    bounded_value,
    deidentify_observation,
    deidentify_participant,
    generalize_birth,
    generalize_zip,
    new_research_id,
    normalize_sex,
    normalize_state,
)
from services.exports.selectors import export_plaintext
from services.exports.terminology import value_set
from services.studies.models import Study

EXPORT_YEAR = 2026
RECORD_KEYS = {"research_id", "sex", "birth_year", "age", "state", "zip3", "observations"}
OBSERVATION_KEYS = {"code_system", "code", "value_number", "unit", "effective_year"}

VALID_CODES = [
    ("http://loinc.org", "2345-7"),
    ("LOINC", "718-7"),
    ("http://loinc.org", "4548-4"),
    ("http://snomed.info/sct", "38341003"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "E11.9"),
    ("rxnorm", "860975"),
]
UNITS = ["mg/dL", "mmol/L", "%", "10*9/L", "/min", "mm[Hg]", ""]
# Every fixed piece of text an export can hold: a generated identifier that is part of it would be a false alarm.
VOCABULARY = " ".join(
    [
        *CSV_COLUMNS,
        *RECORD_KEYS,
        *OBSERVATION_KEYS,
        "female male other unknown 90+ 000 R- true false null observations E11",
        "http://loinc.org http://snomed.info/sct http://hl7.org/fhir/sid/icd-10-cm http://hl7.org/fhir/sid/icd-10",
        "http://www.nlm.nih.gov/research/umls/rxnorm",
        *(code for _, code in VALID_CODES),
        *(code for _, code in value_set()),
        *UNITS,
    ]
).lower()


def not_in_vocabulary(text: str) -> bool:
    return text.lower() not in VOCABULARY


# --- the eighteen identifier kinds of 164.514(b)(2)(i), (A) to (R), as strategies -------------------

names = st.from_regex(r"[A-Z][a-z]{5,11}", fullmatch=True).filter(not_in_vocabulary)
DIGITS = "[0-9]"
birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=date(EXPORT_YEAR, 12, 31))
phones = st.one_of(
    st.from_regex(rf"\([2-9]{DIGITS}{{2}}\) [2-9]{DIGITS}{{2}}-{DIGITS}{{4}}", fullmatch=True),
    st.from_regex(rf"[2-9]{DIGITS}{{2}}\.[2-9]{DIGITS}{{2}}\.{DIGITS}{{4}}", fullmatch=True),
    st.from_regex(rf"\+1[2-9]{DIGITS}{{9}}", fullmatch=True),
)


@st.composite
def written_dates(draw: st.DrawFn) -> str:
    """(C) a date of the person, written as people write dates (and as a number)."""
    day = draw(birth_dates)
    shape = draw(st.sampled_from(["%m/%d/%Y", "%Y-%m-%d", "%Y.%m.%d", "%d.%m.%y", "%Y%m%d", "%-m/%-d/%Y"]))
    return day.strftime(shape)


IDENTIFIERS: dict[str, st.SearchStrategy[str]] = {
    "A names": names,
    "B geography": st.one_of(
        st.builds("{} {} Street".format, st.integers(1, 9999), names), st.from_regex(r"[0-9]{5}", fullmatch=True)
    ),
    "C dates": written_dates(),
    "D telephone": phones,
    "E fax": phones.map(lambda number: "fax " + number),
    "F email": st.emails(),
    "G SSN": st.one_of(
        st.from_regex(r"[0-8][0-9]{2}-[0-9]{2}-[0-9]{4}", fullmatch=True),
        st.from_regex(r"[0-8][0-9]{2}\.[0-9]{2}\.[0-9]{4}", fullmatch=True),
        st.from_regex(r"[1-8][0-9]{8}", fullmatch=True),
    ),
    "H MRN": st.one_of(
        st.from_regex(r"[A-Z]{2,3}[0-9]{6,9}", fullmatch=True), st.from_regex(r"[1-9][0-9]{5,7}", fullmatch=True)
    ),
    "I health plan number": st.from_regex(r"(HP|W)[0-9]{9,11}|[1-9][0-9]{9,11}", fullmatch=True),
    "J account number": st.from_regex(r"[1-9][0-9]{7,11}", fullmatch=True),
    "K certificate or licence": st.from_regex(r"[A-Z][0-9]{7}|RN[0-9]{6}", fullmatch=True),
    "L vehicle": st.from_regex(r"[A-HJ-NPR-Z0-9]{17}|[A-Z]{3}-[0-9]{4}", fullmatch=True),
    "M device": st.from_regex(r"SN-[A-Z0-9]{8,12}|\(01\)[0-9]{14}", fullmatch=True),
    "N URL": names.map(lambda name: f"https://example.org/patients/{name}"),
    "O IP address": st.tuples(*[st.integers(1, 254)] * 4).map(lambda parts: ".".join(map(str, parts))),
    "P biometric": st.from_regex(r"[0-9a-f]{32}", fullmatch=True).map(lambda digest: "fp:" + digest),
    "Q photograph": names.map(lambda name: f"data:image/jpeg;base64,{name}QUFB"),
    "R other unique code": st.from_regex(r"UID-[A-Z0-9]{10}|[0-9]{6,10}", fullmatch=True),
}
identifier_kinds = st.sampled_from(sorted(IDENTIFIERS))
TEXT_FIELDS = ("code_system", "code", "display", "value_text", "unit", "note")
PARTICIPANT_TEXT_FIELDS = ("sex", "state", "postal_code")


def as_number(identifier: str) -> Decimal | None:
    """An identifier typed into a number field: its digits, when it has six or more (else it is no number)."""
    digits = re.sub(r"[^0-9]", "", identifier)
    return Decimal(digits) if len(digits) >= 6 else None


# ICD-10-shaped categories and codes (``S0M``, ``I0T``, ``H00.ZZZZ``), the channel a made-up category is.
icd_10_shapes = st.tuples(
    st.sampled_from(["icd10", "icd-10-cm"]),
    st.from_regex(r"[A-TV-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?", fullmatch=True),
)
# Observation dates from year 1 to 9999: a year is four free digits unless the exporter bounds it.
observation_dates = st.one_of(birth_dates, st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))


@st.composite
def smuggling(draw: st.DrawFn) -> tuple[ParticipantInput, list[str]]:
    """A participant whose every exported field, and every field next to one, carries an identifier."""
    planted: list[str] = []

    def plant() -> str:
        value = draw(IDENTIFIERS[draw(identifier_kinds)])
        planted.append(value)
        return value

    def observation() -> ObservationInput:
        system, code = draw(st.sampled_from(VALID_CODES) | icd_10_shapes)
        fields: dict[str, Any] = {"code_system": system, "code": code, "unit": draw(st.sampled_from(UNITS))}
        for name in draw(st.sets(st.sampled_from(TEXT_FIELDS), min_size=1)):
            fields[name] = plant()
        number = as_number(plant()) if draw(st.booleans()) else draw(st.none() | st.decimals(-999, 999, places=2))
        if draw(st.booleans()):  # an age of a 90+ participant, with its unit, under a condition code
            number, fields["unit"] = Decimal(draw(st.integers(90, 120))), draw(st.sampled_from(["a", "mo", "wk"]))
        return {**fields, "value_number": number, "effective_date": draw(observation_dates)}  # type: ignore[typeddict-item]

    participant: dict[str, Any] = {"date_of_birth": draw(birth_dates), "observations": []}
    for name in PARTICIPANT_TEXT_FIELDS:
        participant[name] = plant() if draw(st.booleans()) else draw(st.sampled_from(["F", "MA", "02139"]))
    participant["observations"] = [observation() for _ in range(draw(st.integers(1, 4)))]
    return participant, planted  # type: ignore[return-value]


def serialised(record: Any) -> dict[str, str]:
    return {"csv": "".join(csv_lines([record])), "jsonl": "".join(jsonl_lines([record]))}


def without_fixed_text(text: str, record: Any) -> str:
    """The text with the research id and the value set's codes taken out: what remains came from the person."""
    text = text.replace(record["research_id"], "")
    for _, code in value_set():
        text = text.replace(code, "")
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(smuggling())
def test_no_identifier_of_the_eighteen_kinds_passes_through_any_exported_field(
    case: tuple[ParticipantInput, list[str]],
) -> None:
    participant, planted = case

    record = deidentify_participant(participant, research_id=new_research_id(), export_year=EXPORT_YEAR)

    assert set(record) == RECORD_KEYS
    assert all(set(observation) == OBSERVATION_KEYS for observation in record["observations"])
    for form, text in serialised(record).items():
        remaining = without_fixed_text(text, record)
        runs = re.findall(r"[0-9]+", remaining)
        for identifier in planted:
            assert identifier.lower() not in text.lower() or not not_in_vocabulary(identifier), (form, identifier)
            digits = re.sub(r"[^0-9]", "", identifier)
            if len(digits) >= 6:
                assert not any(digits in run for run in runs), (form, identifier)
        assert "@" not in text, form
        assert "://" not in remaining.replace("http://", ""), form
        assert not re.search(r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{1,2}/[0-9]{1,2}/[0-9]{2,4}", text), form
        assert max((len(run) for run in runs), default=0) <= 5, (form, runs)
    assert re.fullmatch(r"[0-9]{3}", record["zip3"])
    assert record["state"] is None or re.fullmatch(r"[A-Z]{2}", record["state"])
    assert record["sex"] in {"female", "male", "other", "unknown"}
    born = participant.get("date_of_birth")
    for item in record["observations"]:
        assert (item["code_system"], item["code"]) in value_set()  # no made-up ICD-10 category either
        if "icd-10" in item["code_system"]:
            assert (item["value_number"], item["unit"]) == (None, None)  # a condition carries no age
        year = item["effective_year"]
        assert year in (None, f"<={EXPORT_YEAR - 90}") or (
            isinstance(year, int) and EXPORT_YEAR - 90 < year <= EXPORT_YEAR and (born is None or year >= born.year)
        )


# --- (C) dates: the birth year, and an age by year arithmetic only ------------------------------------


def _built_on(day: datetime.datetime, study: Study) -> list[str]:
    """The CSV an export of ``study`` built on ``day`` holds, through the whole build, without research ids, sorted."""
    with time_machine.travel(day, tick=False), schema_context("alpha"):
        export = deidentified_export_request(
            study=Study.objects.get(pk=study.pk),
            export_format="csv",
            requested_by=str(uuid.uuid4()),
            recipient=Recipient(name="Dana Reviewer", organisation="Example University"),
            purpose="Secondary analysis under the data use agreement.",
        )
        built = deidentified_export_build(export)
        assert built.manifest is not None
        assert built.manifest["export_year"] == day.year
        text = b"".join(export_plaintext(built)).decode()
    header, *rows = text.splitlines()
    return [header, *sorted(row.split(",", 1)[1] for row in rows)]


@pytest.mark.usefixtures("export_dir")
def test_leak_birthday_exports_on_different_days_of_a_year_are_the_same_file_but_for_research_ids(
    study: Study,
) -> None:
    """Review 1.2, through the build: the export year comes from the clock, so the days are the clock's.

    Grace was born on 9 December: one export before her birthday, one on it
    and one after it give the same rows (research ids aside), so no number of
    exports on chosen days narrows a birthday inside its year.
    """
    days = [datetime.datetime(2026, month, day, 9, tzinfo=datetime.UTC) for month, day in ((1, 2), (12, 9), (12, 31))]

    files = [_built_on(day, study) for day in days]

    assert files[0] == files[1] == files[2]
    assert any(row.startswith("female,1976,50,") for row in files[0])  # Grace, 50 all year in 2026
    assert any(row.startswith("female,,90+,") for row in files[0])  # Augusta


@pytest.mark.usefixtures("export_dir")
def test_an_export_made_in_the_next_year_ages_everyone_by_one_year(study: Study) -> None:
    """The file changes only at the new year, for everyone at once: a year is all it says."""
    this_year = _built_on(datetime.datetime(2026, 12, 31, 23, tzinfo=datetime.UTC), study)
    next_year = _built_on(datetime.datetime(2027, 1, 1, 1, tzinfo=datetime.UTC), study)

    assert any(row.startswith("female,1976,50,") for row in this_year)
    assert any(row.startswith("female,1976,51,") for row in next_year)


@settings(max_examples=300, deadline=None)
@given(born=birth_dates)
def test_ages_are_year_arithmetic_and_90_or_more_years_back_is_90_plus_with_no_birth_year(born: date) -> None:
    record = deidentify_participant({"date_of_birth": born}, research_id=new_research_id(), export_year=EXPORT_YEAR)

    years = EXPORT_YEAR - born.year
    if years >= 90:
        assert (record["age"], record["birth_year"]) == ("90+", None)
        assert str(born.year) not in json.dumps({key: record[key] for key in ("age", "birth_year")})
    else:
        assert (record["birth_year"], record["age"]) == (born.year, years)


@pytest.mark.parametrize(
    ("born", "expected"),
    [
        (date(1936, 12, 31), (None, "90+")),  # leak: 89 on the export day, but the year says 90 within it
        (date(1937, 1, 1), (1937, 89)),
        (date(1900, 1, 1), (None, "90+")),
        (date(2026, 12, 31), (2026, 0)),
        (date(2027, 1, 1), (None, None)),  # not yet born in the export year: not an age at all
        (None, (None, None)),
    ],
)
def test_leak_borderline_year_birth_dates_become_the_year_and_an_age_by_year_arithmetic(
    born: date | None, expected: tuple[int | None, int | str | None]
) -> None:
    assert generalize_birth(born, EXPORT_YEAR) == expected


def test_a_leap_day_birthday_is_just_its_year_on_every_day_around_it() -> None:
    born = date(1936, 2, 29)

    around = {generalize_birth(born, day.year) for day in (date(2025, 2, 28), date(2025, 3, 1), date(2025, 12, 31))}

    assert around == {(1936, 89)}
    assert generalize_birth(born, 2026) == (None, "90+")


@pytest.mark.parametrize(
    ("system", "code", "value"),
    [
        ("http://loinc.org", "30525-0", Decimal(97)),  # Age
        ("loinc", "21612-7", Decimal(92)),  # Age - Reported
        ("loinc", "29553-5", Decimal(93)),  # Age calculated
        ("loinc", "21112-8", Decimal(19550312)),  # Birth date
        ("snomed", "424144002", Decimal(91)),  # Current chronological age
        ("snomed", "184099003", Decimal(19550312)),  # Date of birth
    ],
)
def test_leak_observations_coded_as_an_age_or_a_birth_date_are_dropped(system: str, code: str, value: Decimal) -> None:
    tally: Counter[str] = Counter()
    participant: ParticipantInput = {
        "date_of_birth": date(1930, 5, 5),
        "observations": [{"code_system": system, "code": code, "value_number": value, "unit": "a"}],
    }

    record = deidentify_participant(participant, research_id="R-TEST", export_year=EXPORT_YEAR, tally=tally)

    assert record["observations"] == []
    assert tally == Counter({"personal_date_or_age": 1})
    assert str(value) not in "".join(serialised(record).values())


# --- (R) codes, units and values carry codes only -------------------------------------------------------


@pytest.mark.parametrize("code", ["19550312", "42137", "5550142", "123456"])
def test_leak_a_numeric_mrn_typed_as_an_rxnorm_code_is_dropped(code: str) -> None:
    outcome = deidentify_observation(
        {"code_system": "rxnorm", "code": code, "value_number": Decimal(1)}, export_year=EXPORT_YEAR, birth_year=None
    )

    assert outcome.observation is None
    assert outcome.dropped == "not_in_value_set"


@pytest.mark.parametrize("unit", ["01/05/2024", "1/5/2024", "2024.01.05", "555.123.4567", "123.45.6789"])
def test_leak_a_date_phone_or_ssn_typed_as_a_unit_is_not_exported(unit: str) -> None:
    outcome = deidentify_observation(
        {"code_system": "loinc", "code": "2345-7", "unit": unit}, export_year=EXPORT_YEAR, birth_year=None
    )

    assert outcome.observation is not None
    assert outcome.observation["unit"] is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("5.400000"), (Decimal("5.400"), True)),
        (Decimal("0.0012345"), (Decimal("0.001234"), True)),  # four significant digits, half to even
        (Decimal("250"), (Decimal(250), True)),
        (Decimal("98765"), (Decimal("9.876E+4"), True)),
        (Decimal("99999.9"), (None, False)),  # rounds to 100,000
        (Decimal("123456789"), (None, False)),  # an SSN as a value
        (Decimal("6175550142"), (None, False)),  # a phone number
        (Decimal("-0.000"), (Decimal(0), True)),
        (Decimal("NaN"), (None, True)),
        (None, (None, True)),
    ],
)
def test_leak_values_keep_four_significant_digits_and_a_number_too_big_for_a_result_drops_its_observation(
    value: Decimal | None, expected: tuple[Decimal | None, bool]
) -> None:
    assert bounded_value(value) == expected


def test_each_dropped_observation_is_counted_by_its_reason() -> None:
    tally: Counter[str] = Counter()
    observations: list[ObservationInput] = [
        {"code_system": "local", "code": "ADA-1"},
        {"code_system": "loinc", "code": "2345-8"},
        {"code_system": "loinc", "code": "30525-0", "value_number": Decimal(95)},
        {"code_system": "rxnorm", "code": "19550312"},
        {"code_system": "loinc", "code": "2345-7", "value_number": Decimal(123456789)},
        {"code_system": "icd-10-cm", "code": "E11.65"},
        {"code_system": "loinc", "code": "2345-7", "value_number": Decimal("5.4")},
    ]

    record = deidentify_participant(
        {"observations": observations}, research_id="R-TEST", export_year=EXPORT_YEAR, tally=tally
    )

    assert [(item["code_system"], item["code"]) for item in record["observations"]] == [
        ("http://hl7.org/fhir/sid/icd-10-cm", "E11"),  # cut to its category, which the value set lists
        ("http://loinc.org", "2345-7"),
    ]
    assert tally == Counter(
        {
            "uncoded": 2,
            "personal_date_or_age": 1,
            "not_in_value_set": 1,
            "value_out_of_range": 1,
            "code_generalised_to_category": 1,
        }
    )


# --- the research id ---------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(smuggling())
def test_the_same_participant_gets_a_new_research_id_in_every_export(
    case: tuple[ParticipantInput, list[str]],
) -> None:
    participant, _ = case

    first = deidentify_participant(participant, research_id=ResearchIds().issue(), export_year=EXPORT_YEAR)
    second = deidentify_participant(participant, research_id=ResearchIds().issue(), export_year=EXPORT_YEAR)

    assert first["research_id"] != second["research_id"]
    assert {key: value for key, value in first.items() if key != "research_id"} == {
        key: value for key, value in second.items() if key != "research_id"
    }


def test_research_ids_are_random_and_unique_within_an_export() -> None:
    ids = ResearchIds()

    issued = [ids.issue() for _ in range(5000)]

    assert len(set(issued)) == len(issued)
    assert all(re.fullmatch(r"R-[A-HJ-NP-Z2-9]{16}", research_id) for research_id in issued)


def test_an_issuer_never_hands_out_an_id_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = iter(["R-AAAAAAAAAAAAAAAA", "R-AAAAAAAAAAAAAAAA", "R-BBBBBBBBBBBBBBBB"])
    monkeypatch.setattr("services.exports.safe_harbor.new_research_id", lambda: next(drawn))
    ids = ResearchIds()

    assert [ids.issue(), ids.issue()] == ["R-AAAAAAAAAAAAAAAA", "R-BBBBBBBBBBBBBBBB"]


# --- (B) geography ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("postal_code", "expected"),
    [
        ("02139", "021"),
        ("02139-4307", "021"),
        ("021394307", "021"),
        (" 10001 ", "100"),
        ("03601", "000"),
        ("89301-1234", "000"),
        ("20301", "000"),
        ("0213", "000"),
        ("SW1A 1AA", "000"),
        ("", "000"),
        (None, "000"),
    ],
)
def test_zip_codes_keep_three_digits_only_where_the_table_allows_the_prefix(
    postal_code: str | None, expected: str
) -> None:
    assert generalize_zip(postal_code) == expected


@pytest.mark.parametrize(
    "postal_code",
    [
        "\uff18\uff18\uff14\uff10\uff11",
        "\uff10\uff12\uff11\uff13\uff19",
        "\u0660\u0662\u0661\u0663\u0669",
        "02\u066139",
    ],
)
def test_leak_full_width_and_other_scripts_digits_are_no_zip_code(postal_code: str) -> None:
    assert generalize_zip(postal_code) == "000"


@pytest.mark.parametrize(
    "prefix",
    [*(f"{n:03d}" for n in range(90, 99)), "340", *(str(n) for n in range(962, 967)), "205", "369"],
)
def test_leak_military_unpopulated_and_newly_small_prefixes_become_000(prefix: str) -> None:
    """Review 1.1: APO/FPO 090-098, 340, 962-966 have no residents; 205 and 369 are small on the 2010-based list."""
    assert generalize_zip(prefix + "01") == "000"


# --- sex and state ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("F", "female"), (" male ", "male"), ("Intersex", "other"), ("", "unknown"), ("Ada Lovelace", "unknown")],
)
def test_sex_is_one_of_four_values(value: str, expected: str) -> None:
    assert normalize_sex(value) == expected


@pytest.mark.parametrize(("value", "expected"), [("ma", "MA"), (" PR ", "PR"), ("Massachusetts", None), (None, None)])
def test_a_state_is_kept_only_as_a_usps_code(value: str | None, expected: str | None) -> None:
    assert normalize_state(value) == expected


def test_free_text_and_uncoded_observations_are_dropped() -> None:
    participant: ParticipantInput = {
        "date_of_birth": date(1980, 2, 29),
        "observations": [
            {
                "code_system": "http://loinc.org",
                "code": "2345-7",
                "display": "Glucose",
                "value_number": Decimal("5.400000"),
                "value_text": "high",
                "unit": "mmol/L",
                "effective_date": date(2025, 3, 4),
                "note": "Ada said she fasted",
            },
            {"code_system": "local", "code": "ADA-1", "value_number": Decimal(1), "effective_date": date(2025, 1, 1)},
            {"code_system": "loinc", "code": "718-7", "value_number": Decimal("NaN"), "unit": "grams"},
        ],
    }

    record = deidentify_participant(participant, research_id="R-TEST", export_year=EXPORT_YEAR)

    assert (record["birth_year"], record["age"]) == (1980, 46)
    assert record["observations"] == [
        {
            "code_system": "http://loinc.org",
            "code": "2345-7",
            "value_number": Decimal("5.4"),
            "unit": "mmol/L",
            "effective_year": 2025,
        },
        {
            "code_system": "http://loinc.org",
            "code": "718-7",
            "value_number": None,
            "unit": None,
            "effective_year": None,
        },
    ]


def test_the_eighteen_identifier_kinds_are_listed_a_to_r_each_with_its_handling() -> None:
    assert [kind.letter for kind in IDENTIFIER_KINDS] == list("abcdefghijklmnopqr")
    assert all(kind.detail and isinstance(kind.handling, Handling) for kind in IDENTIFIER_KINDS)
    by_letter = {kind.letter: kind for kind in IDENTIFIER_KINDS}
    assert by_letter["a"].handling == by_letter["h"].handling == Handling.REMOVED
    assert by_letter["b"].handling == by_letter["c"].handling == Handling.GENERALIZED
    assert by_letter["r"].handling == Handling.REPLACED
    assert "export year minus birth year" in by_letter["c"].detail
    assert "2000 Census" not in by_letter["b"].detail


# --- the file formats ------------------------------------------------------------------------


def sample_records() -> list[Any]:
    ids = ResearchIds()
    with_observations = deidentify_participant(
        {
            "date_of_birth": date(1930, 1, 1),
            "sex": "f",
            "state": "ma",
            "postal_code": "02139",
            "observations": [
                {"code_system": "loinc", "code": "2345-7", "value_number": Decimal("5.50"), "unit": "mmol/L"},
                {"code_system": "loinc", "code": "718-7", "value_number": Decimal("-0.000"), "unit": "g/dL"},
            ],
        },
        research_id=ids.issue(),
        export_year=EXPORT_YEAR,
    )
    without = deidentify_participant({"sex": "m"}, research_id=ids.issue(), export_year=EXPORT_YEAR)
    return [with_observations, without]


def test_csv_has_a_row_per_observation_and_one_for_a_participant_without_any() -> None:
    records = sample_records()

    rows = list(csv.DictReader(io.StringIO("".join(csv_lines(records)))))

    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [row["research_id"] for row in rows] == [records[0]["research_id"]] * 2 + [records[1]["research_id"]]
    assert rows[0] | {"research_id": ""} == {
        "research_id": "",
        "sex": "female",
        "birth_year": "",
        "age": "90+",
        "state": "MA",
        "zip3": "021",
        "code_system": "http://loinc.org",
        "code": "2345-7",
        "value_number": "5.5",
        "unit": "mmol/L",
        "effective_year": "",
    }
    assert rows[1]["value_number"] == "0"
    assert rows[2]["code"] == rows[2]["value_number"] == ""


def test_jsonl_has_a_line_per_participant_with_observations_nested() -> None:
    records = sample_records()

    lines = [json.loads(line) for line in "".join(jsonl_lines(records)).splitlines()]

    assert [line["research_id"] for line in lines] == [record["research_id"] for record in records]
    assert lines[0]["age"] == "90+"
    assert lines[0]["observations"][0]["value_number"] == "5.5"
    assert lines[1]["observations"] == []


@given(st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**12), max_value=10**12))
def test_decimal_text_keeps_the_exact_value(value: Decimal) -> None:
    text = decimal_text(value)

    assert text is not None
    assert "E" not in text
    assert Decimal(text) == value
