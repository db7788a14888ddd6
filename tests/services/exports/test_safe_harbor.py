"""Safe Harbor de-identification: generated participants never leave an identifier in an export record."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.exports.formats import CSV_COLUMNS, csv_lines, decimal_text, jsonl_lines
from services.exports.safe_harbor import (
    IDENTIFIER_KINDS,
    RESTRICTED_ZIP3_FILE,
    Handling,
    ObservationInput,
    ParticipantInput,
    ResearchIds,
    deidentify_participant,
    generalize_birth,
    generalize_zip,
    load_zip3_table,
    new_research_id,
    normalize_sex,
    normalize_state,
    restricted_zip3,
)

AS_OF = date(2026, 6, 30)
HHS_RESTRICTED_ZIP3 = {
    "036", "059", "063", "102", "203", "556", "692", "790", "821",
    "823", "830", "831", "878", "879", "884", "890", "893",
}  # fmt: skip
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
        "female male other unknown 90+ 000 R- true false null observations",
        "http://loinc.org http://snomed.info/sct http://hl7.org/fhir/sid/icd-10-cm http://hl7.org/fhir/sid/icd-10",
        "http://www.nlm.nih.gov/research/umls/rxnorm",
        *(code for _, code in VALID_CODES),
        *UNITS,
    ]
).lower()


def not_in_vocabulary(text: str) -> bool:
    return text.lower() not in VOCABULARY


# --- strategies -------------------------------------------------------------------------

names = st.from_regex(r"[A-Z][a-z]{5,11}", fullmatch=True).filter(not_in_vocabulary)
birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=AS_OF)
phones = st.one_of(
    st.from_regex(r"\([2-9]\d{2}\) [2-9]\d{2}-\d{4}", fullmatch=True),
    st.from_regex(r"[2-9]\d{2}\.[2-9]\d{2}\.\d{4}", fullmatch=True),
    st.from_regex(r"\+1[2-9]\d{9}", fullmatch=True),
)
mrns = st.from_regex(r"[A-Z]{2,3}\d{6,9}", fullmatch=True).filter(not_in_vocabulary)
restricted_zips = st.tuples(st.sampled_from(sorted(HHS_RESTRICTED_ZIP3)), st.from_regex(r"\d{2}", fullmatch=True))
zips = st.one_of(
    st.from_regex(r"\d{5}", fullmatch=True),
    st.from_regex(r"\d{5}-\d{4}", fullmatch=True),
    restricted_zips.map("".join),
    st.text(max_size=12),
).filter(not_in_vocabulary)
states = st.one_of(st.sampled_from(["MA", "ny", " ca ", "PR", "Massachusetts", "ZZ"]), st.text(max_size=4))
sexes = st.one_of(st.sampled_from(["female", "M", "Other", "unknown", "Woman"]), st.text(max_size=12))
values = st.one_of(st.none(), st.decimals(min_value=-999, max_value=999, places=2, allow_nan=False))


@st.composite
def street_addresses(draw: st.DrawFn) -> tuple[str, str]:
    """``(address, street name)``."""
    street = draw(names)
    number = draw(st.integers(min_value=1, max_value=9999))
    suffix = draw(st.sampled_from(["Street", "Avenue", "Road", "Lane", "Apt 4B, Main Street"]))
    return f"{number} {street} {suffix}", street


@st.composite
def people(draw: st.DrawFn) -> tuple[ParticipantInput, dict[str, Any]]:
    """A participant full of identifiers, and the identifiers to look for afterwards."""
    given, family, city = draw(names), draw(names), draw(names)
    address, street = draw(street_addresses())
    phone, mrn, email = draw(phones), draw(mrns), draw(st.emails())
    dates = [draw(birth_dates), *draw(st.lists(st.dates(min_value=date(1990, 1, 1), max_value=AS_OF), max_size=4))]
    free_text = f"{given} {family} ({mrn}), {address}, {city}; call {phone} or write {email} on {dates[0]:%m/%d/%Y}"

    def observation(on: date) -> ObservationInput:
        system, code = draw(
            st.one_of(
                st.sampled_from(VALID_CODES),
                st.sampled_from([("http://example.org/" + family, "x-1"), ("loinc", "2345-8"), (given, family)]),
            )
        )
        return {
            "code_system": system,
            "code": code,
            "display": f"glucose for {given} {family}",
            "value_number": draw(values),
            "value_text": free_text,
            "unit": draw(st.sampled_from([*UNITS, family, f"mg per {city}", "mg/{" + given + "}"])),
            "effective_date": on,
            "note": free_text,
        }

    participant: ParticipantInput = {
        "given_name": given,
        "family_name": family,
        "date_of_birth": dates[0],
        "sex": draw(sexes),
        "mrn": mrn,
        "email": email,
        "phone": phone,
        "street_address": address,
        "city": city,
        "state": draw(states),
        "postal_code": draw(zips),
        "pseudonym": "P-" + draw(st.from_regex(r"[A-HJ-NP-Z2-9]{10}", fullmatch=True)),
        "protocol_number": "PROTO-" + family,
        "observations": [observation(on) for on in dates[1:]],
    }
    secrets = {
        "words": [given, family, city, street, mrn, participant["pseudonym"], participant["protocol_number"]],
        "literals": [address, phone, re.sub(r"\D", "", phone)[-10:], email, free_text],
        "dates": dates,
    }
    return participant, secrets


def serialised(record: Any) -> dict[str, str]:
    return {"csv": "".join(csv_lines([record])), "jsonl": "".join(jsonl_lines([record]))}


def reference_age(born: date, on: date) -> int:
    years = on.year - born.year
    return years - 1 if (on.month, on.day) < (born.month, born.day) else years


# --- the property: nothing identifying survives ---------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people())
def test_no_export_record_holds_an_identifier(case: tuple[ParticipantInput, dict[str, Any]]) -> None:
    participant, secrets = case

    record = deidentify_participant(participant, research_id=new_research_id(), as_of=AS_OF)

    assert set(record) == RECORD_KEYS
    assert all(set(observation) == OBSERVATION_KEYS for observation in record["observations"])
    for form, text in serialised(record).items():
        lowered = text.lower()
        for word in secrets["words"]:
            assert word.lower() not in lowered, (form, word)
        for literal in secrets["literals"]:
            assert literal.lower() not in lowered, (form, literal)
        assert "@" not in text, form
        for day in secrets["dates"]:
            for shown in (day.isoformat(), f"{day:%m/%d/%Y}", f"{day:%Y%m%d}", f"{day.month}/{day.day}/{day.year}"):
                assert shown not in text, (form, shown)
        assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}", text), form
    assert record["zip3"] not in HHS_RESTRICTED_ZIP3
    assert re.fullmatch(r"\d{3}", record["zip3"])
    postal = (participant.get("postal_code") or "").strip()
    if postal[:3] in HHS_RESTRICTED_ZIP3:
        assert record["zip3"] == "000"
    assert record["state"] is None or re.fullmatch(r"[A-Z]{2}", record["state"])
    assert record["sex"] in {"female", "male", "other", "unknown"}


@settings(max_examples=200, deadline=None)
@given(born=birth_dates)
def test_ages_over_89_are_90_plus_with_no_birth_year(born: date) -> None:
    record = deidentify_participant({"date_of_birth": born}, research_id=new_research_id(), as_of=AS_OF)

    age = reference_age(born, AS_OF)
    if age > 89:
        assert record["age"] == "90+"
        assert record["birth_year"] is None
        assert str(born.year) not in json.dumps({key: record[key] for key in ("age", "birth_year")})
    else:
        assert record["age"] == age
        assert record["birth_year"] == born.year


@settings(max_examples=100, deadline=None)
@given(people())
def test_the_same_participant_gets_a_new_research_id_in_every_export(
    case: tuple[ParticipantInput, dict[str, Any]],
) -> None:
    participant, _ = case

    first = deidentify_participant(participant, research_id=ResearchIds().issue(), as_of=AS_OF)
    second = deidentify_participant(participant, research_id=ResearchIds().issue(), as_of=AS_OF)

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


# --- the pieces, one by one ------------------------------------------------------------------


def test_the_restricted_zip3_table_is_the_hhs_list_and_names_its_source() -> None:
    assert restricted_zip3() == HHS_RESTRICTED_ZIP3
    notes = [line for line in RESTRICTED_ZIP3_FILE.read_text().splitlines() if line.startswith("#")]
    assert any("De-identification of Protected Health Information" in line for line in notes)
    assert any("2000 Census" in line for line in notes)


@pytest.mark.parametrize("table", ["zip3\n", "zip3\n12\n", "zip3\n0A6\n", "prefix\n036\n"])
def test_a_malformed_zip3_table_is_refused(table: str, tmp_path: Path) -> None:
    path = tmp_path / "zip3.csv"
    path.write_text("# a note\n" + table)

    with pytest.raises(ValueError, match="three-digit"):
        load_zip3_table(path)


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
def test_zip_codes_keep_three_digits_only_where_more_than_20000_people_live(
    postal_code: str | None, expected: str
) -> None:
    assert generalize_zip(postal_code) == expected


@pytest.mark.parametrize(
    ("born", "expected"),
    [
        (date(1936, 7, 1), (1936, 89)),  # 90 tomorrow
        (date(1936, 6, 30), (None, "90+")),  # 90 today
        (date(1900, 1, 1), (None, "90+")),
        (date(2026, 6, 30), (2026, 0)),
        (date(2026, 7, 1), (None, None)),  # not yet born: not an age at all
        (None, (None, None)),
    ],
)
def test_birth_dates_become_a_year_and_an_age_at_the_export_date(
    born: date | None, expected: tuple[int | None, int | str | None]
) -> None:
    assert generalize_birth(born, AS_OF) == expected


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

    record = deidentify_participant(participant, research_id="R-TEST", as_of=AS_OF)

    assert record["birth_year"] == 1980
    assert record["age"] == 46
    assert record["observations"] == [
        {
            "code_system": "http://loinc.org",
            "code": "2345-7",
            "value_number": Decimal("5.400000"),
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
    by_letter = {kind.letter: kind.handling for kind in IDENTIFIER_KINDS}
    assert by_letter["a"] == by_letter["h"] == Handling.REMOVED
    assert by_letter["b"] == by_letter["c"] == Handling.GENERALIZED
    assert by_letter["r"] == Handling.REPLACED


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
        as_of=AS_OF,
    )
    without = deidentify_participant({"sex": "m"}, research_id=ids.issue(), as_of=AS_OF)
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


def test_a_birthday_is_never_off_by_a_day_around_leap_years() -> None:
    born = date(1936, 2, 29)

    assert generalize_birth(born, date(2026, 2, 28)) == (1936, 89)
    assert generalize_birth(born, date(2026, 3, 1)) == (None, "90+")
    assert generalize_birth(born, date(2026, 3, 1) - timedelta(days=1)) == (1936, 89)
