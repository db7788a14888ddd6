"""The ZIP3 table: an allow-list with its provenance, and its build from a Census ZCTA5 population file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.checks import Error, Warning
from django.core.checks.registry import registry
from django.core.management import CommandError, call_command
from django_tenants.utils import get_public_schema_name, schema_context
from pytest_django import Settings

from security.audit.selectors import audit_events
from services.exports.checks import zip3_table_check
from services.exports.safe_harbor import generalize_zip
from services.exports.zip3 import (
    MIN_POPULATION,
    ZIP3_ALLOWLIST_FILE,
    census_zip3_population,
    load_zip3_table,
    write_zip3_population,
    zip3_table,
)

HHS_2000_LIST = [
    "036",
    "059",
    "063",
    "102",
    "203",
    "556",
    "692",
    "790",
    "821",
    "823",
    "830",
    "831",
    "878",
    "879",
    "884",
    "890",
    "893",
]
LIST_2010 = ["036", "059", "102", "203", "205", "369", "556", "692", "821", "823", "878", "879", "884", "893"]
NO_RESIDENTS = [*(f"{n:03d}" for n in range(90, 99)), "340", *(str(n) for n in range(962, 967))]
HEADER = "GEO_ID,NAME,P1_001N\nGeography,Geographic Area Name,!!Total\n"


def census_file(tmp_path: Path, rows: str, header: str = HEADER) -> Path:
    """A small file in data.census.gov's layout of table P1 by ZCTA5."""
    path = tmp_path / "DECENNIALDHC2020.P1-Data.csv"
    path.write_text(header + rows, encoding="utf-8")
    return path


def zcta(code: str, people: int) -> str:
    return f'860Z200US{code},"ZCTA5 {code}",{people}\n'


# --- the shipped table ----------------------------------------------------------------------------


def test_the_shipped_table_is_an_allow_list_that_says_plainly_it_is_not_the_2020_census() -> None:
    table = load_zip3_table(ZIP3_ALLOWLIST_FILE)

    assert table.kind == "allowlist"
    assert "NOT the 2020 Census table" in table.source
    assert (table.vintage, table.table) == ("none", "none")
    notes = "\n".join(line for line in ZIP3_ALLOWLIST_FILE.read_text().splitlines() if line.startswith("#"))
    assert "zip3_table_build" in notes  # how to replace it


def test_the_shipped_allow_list_leaves_out_every_small_or_unpopulated_prefix_the_review_names() -> None:
    allowed = load_zip3_table(ZIP3_ALLOWLIST_FILE).allowed

    assert allowed.isdisjoint(HHS_2000_LIST)
    assert allowed.isdisjoint(LIST_2010)
    assert allowed.isdisjoint(NO_RESIDENTS)
    assert "000" not in allowed
    assert {"021", "100", "606", "900", "981"} <= allowed  # Cambridge, Manhattan, Chicago, Los Angeles, Seattle


def test_exports_use_the_shipped_allow_list_until_a_population_table_is_built() -> None:
    assert zip3_table().file_name == "zip3_allowlist.csv"


def test_a_prefix_the_table_does_not_name_becomes_000(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "zip3.csv"
    path.write_text("# kind: allowlist\n# source: a test\n# vintage: none\n# table: none\nzip3\n021\n")
    settings.DEIDENTIFIED_EXPORT_ZIP3_TABLE = str(path)

    assert [generalize_zip(code) for code in ("02139", "10001", "00501")] == ["021", "000", "000"]


@pytest.mark.parametrize(
    "table",
    [
        "zip3\n",
        "zip3\n12\n",
        "zip3\n0A6\n",
        "zip3\n\u0660\u0662\u0661\n",
        "prefix\n036\n",
        "zip3\n021\n021\n",
        "zip3,population\n021,many\n",
        "zip3,population,extra\n021,1,2\n",
    ],
)
def test_a_malformed_zip3_table_is_refused(table: str, tmp_path: Path) -> None:
    path = tmp_path / "zip3.csv"
    path.write_text("# kind: allowlist\n# source: a test\n# vintage: none\n# table: none\n" + table)

    with pytest.raises(ValueError, match="three-digit"):
        load_zip3_table(path)


def test_a_table_without_its_provenance_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "zip3.csv"
    path.write_text("# kind: allowlist\n# source: a test\nzip3\n021\n")  # no vintage, no table id

    with pytest.raises(ValueError, match="provenance"):
        load_zip3_table(path)


# --- building the table from a Census file -------------------------------------------------------------


def test_zcta_totals_are_summed_by_their_first_three_digits(tmp_path: Path) -> None:
    path = census_file(tmp_path, zcta("02139", 15_000) + zcta("02138", 6_000) + zcta("03601", 4_000))

    assert census_zip3_population(path) == {"021": 21_000, "036": 4_000}


def test_the_build_command_writes_a_table_with_its_provenance_and_exports_keep_only_prefixes_over_20000(
    db: None, tmp_path: Path, settings: Settings
) -> None:
    rows = zcta("02139", 15_000) + zcta("02138", 6_000) + zcta("03601", 4_000) + zcta("10001", 20_000)
    output = tmp_path / "zip3_population.csv"
    out = io.StringIO()

    call_command(
        "zip3_table_build",
        "--census-file",
        str(census_file(tmp_path, rows)),
        "--vintage",
        "2020",
        "--table",
        "DECENNIALDHC2020.P1",
        "--output",
        str(output),
        "--operator",
        "ops-ana",
        stdout=out,
    )
    settings.DEIDENTIFIED_EXPORT_ZIP3_TABLE = str(output)
    table = zip3_table()

    assert (table.kind, table.vintage, table.table) == ("population", "2020", "DECENNIALDHC2020.P1")
    assert "2020 Census" in table.source
    assert "P1" in table.source
    assert table.allowed == {"021"}  # 21,000; 100 has exactly 20,000, which is not more than 20,000
    assert MIN_POPULATION == 20_000
    assert [generalize_zip(code) for code in ("02139", "10001", "03601", "09001")] == ["021", "000", "000", "000"]
    assert "zip3_table_build --census-file DECENNIALDHC2020.P1-Data.csv" in output.read_text()
    assert "3 prefixes, 1 with more than 20,000 people" in out.getvalue()
    with schema_context(get_public_schema_name()):
        (event,) = audit_events(action="export.zip3_table_build")
    assert (event.actor_id, event.resource_id) == ("operator:ops-ana", table.sha256)


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        ("ZCTA,POP\n", "02139,100\n", "no GEO_ID, NAME, P1_001N column"),
        (HEADER, '860Z200US02139,"ZCTA5 02139",lots\n', "line 3: P1_001N is not a whole number"),
        (HEADER, '860Z200US02139,"ZCTA5 02138",100\n', "line 3: not a ZCTA5 row"),
        (HEADER, '0400000US25,"Massachusetts",7000000\n', "line 3: not a ZCTA5 row"),
        (HEADER, '860Z200US\uff10\uff12\uff11\uff13\uff19,"ZCTA5 02139",100\n', "line 3: not a ZCTA5 row"),
        (HEADER, zcta("02139", 1) + zcta("02139", 2), "line 4: ZCTA5 02139 is given twice"),
        (HEADER, "", "no ZCTA5 rows"),
    ],
)
def test_a_malformed_census_file_is_refused_and_nothing_is_written(
    db: None, tmp_path: Path, header: str, rows: str, message: str
) -> None:
    output = tmp_path / "zip3_population.csv"

    with pytest.raises(CommandError, match=message):
        call_command(
            "zip3_table_build",
            *("--census-file", str(census_file(tmp_path, rows, header))),
            *("--vintage", "2020", "--table", "P1", "--output", str(output)),
        )

    assert not output.exists()
    assert list(tmp_path.glob(".zip3_population.csv.*")) == []


@pytest.mark.parametrize(("vintage", "table"), [("twenty", "P1"), ("\uff12\uff10\uff12\uff10", "P1"), ("2020", " ")])
def test_the_build_command_wants_a_year_and_a_table_id(db: None, tmp_path: Path, vintage: str, table: str) -> None:
    path = census_file(tmp_path, zcta("02139", 30_000))

    with pytest.raises(CommandError, match=r"--vintage|--table"):
        call_command(
            "zip3_table_build",
            *("--census-file", str(path), "--vintage", vintage, "--table", table),
            *("--output", str(tmp_path / "out.csv")),
        )

    assert not (tmp_path / "out.csv").exists()


# --- the operator is told when exports still run on the shipped allow-list (issue 16 item 3) ------------


def test_production_warns_while_exports_use_the_shipped_allow_list(settings: Settings, tmp_path: Path) -> None:
    settings.SETTINGS_MODULE = "config.settings.production"

    (warning,) = zip3_table_check(None)

    assert isinstance(warning, Warning)
    assert not isinstance(warning, Error)  # a warning: the allow-list is safe, only coarser than the Census table
    assert warning.id == "exports.W001"
    assert "zip3_table_build" in str(warning.hint)
    assert "2020" in str(warning.hint)
    assert zip3_table_check in registry.get_checks()


def test_no_warning_once_a_population_table_is_configured_or_outside_production(
    settings: Settings, tmp_path: Path
) -> None:
    built = tmp_path / "zip3_population.csv"
    write_zip3_population({"021": 30_000}, built, source="Census", vintage="2020", table="P1", command="test")
    assert zip3_table_check(None) == []  # the test settings are not production

    settings.SETTINGS_MODULE = "config.settings.production"
    settings.DEIDENTIFIED_EXPORT_ZIP3_TABLE = str(built)

    assert zip3_table_check(None) == []


def test_a_table_built_from_a_census_older_than_2020_is_built_with_a_warning(db: None, tmp_path: Path) -> None:
    output, out, err = tmp_path / "zip3_population.csv", io.StringIO(), io.StringIO()

    call_command(
        "zip3_table_build",
        *("--census-file", str(census_file(tmp_path, zcta("02139", 30_000))), "--vintage", "2010", "--table", "P1"),
        *("--output", str(output), "--operator", "ops-ana"),
        stdout=out,
        stderr=err,
    )

    assert output.exists()  # exit 0: the table is written
    assert "2010" in err.getvalue()
    assert "older than the 2020 Census" in err.getvalue()


def test_a_2020_table_is_built_without_a_warning(db: None, tmp_path: Path) -> None:
    err = io.StringIO()

    call_command(
        "zip3_table_build",
        *("--census-file", str(census_file(tmp_path, zcta("02139", 30_000))), "--vintage", "2020", "--table", "P1"),
        *("--output", str(tmp_path / "zip3_population.csv"), "--operator", "ops-ana"),
        stdout=io.StringIO(),
        stderr=err,
    )

    assert err.getvalue() == ""
