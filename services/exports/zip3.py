"""The ZIP3 table of de-identified exports, and its build from a Census population file (164.514(b)(2)(i)(B)).

Safe Harbor lets an export keep a ZIP code's first three digits only where,
"according to the current publicly available data from the Bureau of the
Census", all ZIP codes sharing them hold more than 20,000 people; every other
prefix becomes ``000``. So the table is an **allow-list**: a prefix the table
does not name (a military or unassigned prefix, one with no population) is
suppressed rather than passed through.

Two forms of table, both CSV with ``#`` notes whose ``key: value`` lines carry
the provenance the manifest repeats (``kind``, ``source``, ``vintage``,
``table``):

- ``zip3,population``: built by ``manage.py zip3_table_build`` from the
  Census Bureau's ZCTA5 population (table P1); prefixes with more than
  :data:`MIN_POPULATION` people are allowed.
- ``zip3``: a list of allowed prefixes (the shipped conservative allow-list,
  ``data/zip3_allowlist.csv``, used until a population table is built).

``DEIDENTIFIED_EXPORT_ZIP3_TABLE`` names the table; empty means
``data/zip3_population.csv`` if it was built, else the shipped allow-list.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from django.conf import settings

DATA_DIR = Path(__file__).resolve().parent / "data"
ZIP3_POPULATION_FILE = DATA_DIR / "zip3_population.csv"
ZIP3_ALLOWLIST_FILE = DATA_DIR / "zip3_allowlist.csv"
MIN_POPULATION = 20_000  # a prefix is kept only with MORE than this many people
PROVENANCE_KEYS = ("kind", "source", "vintage", "table")
_PREFIX = re.compile(r"[0-9]{3}", re.ASCII)
_NOTE = re.compile(r"#\s*([a-z_-]+):\s*(.*)")
# data.census.gov's CSV of a table by ZCTA5: GEO_ID "860Z200US01001", NAME "ZCTA5 01001", total P1_001N.
_GEO_ID = re.compile(r"860Z200US([0-9]{5})", re.ASCII)
_NAME = re.compile(r"ZCTA5 ([0-9]{5})", re.ASCII)
_COUNT = re.compile(r"[0-9]{1,9}", re.ASCII)
CENSUS_TOTAL_COLUMN = "P1_001N"


@dataclass(frozen=True)
class Zip3Table:
    """The prefixes an export may keep, and where the table came from."""

    allowed: frozenset[str]
    kind: str
    source: str
    vintage: str
    table: str
    file_name: str
    sha256: str

    def provenance(self) -> dict[str, str]:
        """What the manifest says of the table."""
        return {
            "kind": self.kind,
            "source": self.source,
            "vintage": self.vintage,
            "table": self.table,
            "file": self.file_name,
            "sha256": self.sha256,
            "rule": f"a prefix is kept only if this table allows it (more than {MIN_POPULATION:,} people); else 000",
        }


def _notes(lines: Iterable[str]) -> dict[str, str]:
    found = (_NOTE.fullmatch(line.strip()) for line in lines if line.startswith("#"))
    return {match.group(1): match.group(2).strip() for match in found if match is not None}


def _allowed(rows: list[dict[str, str]], columns: list[str]) -> frozenset[str] | None:
    prefixes = [str(row.get("zip3") or "").strip() for row in rows]
    if not prefixes or not all(_PREFIX.fullmatch(prefix) for prefix in prefixes) or len(set(prefixes)) < len(rows):
        return None
    if columns == ["zip3"]:
        return frozenset(prefixes)
    if columns != ["zip3", "population"] or not all(_COUNT.fullmatch(str(row["population"])) for row in rows):
        return None
    return frozenset(row["zip3"].strip() for row in rows if int(row["population"]) > MIN_POPULATION)


def load_zip3_table(path: Path) -> Zip3Table:
    """Read a ZIP3 table (either form) with its provenance notes.

    Raises:
        ValueError: The table is empty, holds something other than three-digit prefixes (or whole
            populations), repeats a prefix, or lacks a ``kind``, ``source``, ``vintage`` or ``table`` note.
    """
    raw = path.read_bytes()
    lines = raw.decode("utf-8").splitlines()
    notes = _notes(lines)
    reader = csv.DictReader(line for line in lines if not line.startswith("#"))
    rows = list(reader)
    allowed = _allowed(rows, list(reader.fieldnames or []))
    if allowed is None or any(not notes.get(key) for key in PROVENANCE_KEYS):
        raise ValueError(f"{path.name} is not a ZIP3 table of three-digit prefixes with its provenance notes")
    return Zip3Table(
        allowed=allowed,
        kind=notes["kind"],
        source=notes["source"],
        vintage=notes["vintage"],
        table=notes["table"],
        file_name=path.name,
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def zip3_table_path() -> Path:
    """The table exports use: the setting's, else the built population table, else the shipped allow-list."""
    configured = str(settings.DEIDENTIFIED_EXPORT_ZIP3_TABLE or "")
    if configured:
        return Path(configured)
    return ZIP3_POPULATION_FILE if ZIP3_POPULATION_FILE.exists() else ZIP3_ALLOWLIST_FILE


@cache
def _table(path: str, modified_ns: int) -> Zip3Table:
    return load_zip3_table(Path(path))


def zip3_table() -> Zip3Table:
    """The current ZIP3 table (read again when its file changes)."""
    path = zip3_table_path()
    return _table(str(path), path.stat().st_mtime_ns)


# --- building the table from a Census file ---------------------------------------------------------


class CensusFileError(ValueError):
    """The Census file is not a ZCTA5 population table this build understands; the message says where."""


def _census_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"GEO_ID", "NAME", CENSUS_TOTAL_COLUMN} - set(reader.fieldnames or [])
        if missing:
            raise CensusFileError(f"{path.name}: no {', '.join(sorted(missing))} column (expected data.census.gov CSV)")
        for row in reader:
            yield reader.line_num, row


def _zcta(line: int, row: Mapping[str, str | None]) -> tuple[str, int] | None:
    """``(ZCTA5, population)`` of a data row; None for the label row under the header."""
    geo_id, name, total = (str(row.get(key) or "").strip() for key in ("GEO_ID", "NAME", CENSUS_TOTAL_COLUMN))
    if geo_id == "Geography":  # data.census.gov's second header row: the columns' labels
        return None
    by_id, by_name = _GEO_ID.fullmatch(geo_id), _NAME.fullmatch(name)
    if by_id is None or by_name is None or by_id.group(1) != by_name.group(1):
        raise CensusFileError(f"line {line}: not a ZCTA5 row (GEO_ID 860Z200US<5 digits>, NAME 'ZCTA5 <5 digits>')")
    if not _COUNT.fullmatch(total):
        raise CensusFileError(f"line {line}: {CENSUS_TOTAL_COLUMN} is not a whole number of people")
    return by_id.group(1), int(total)


def census_zip3_population(path: Path) -> dict[str, int]:
    """The population of every ZIP3 prefix: the Census file's ZCTA5 totals summed by their first three digits.

    Raises:
        CensusFileError: A missing column, a row that is not a ZCTA5's, a count that is not a whole
            number, a ZCTA5 given twice, or no ZCTA5 at all.
    """
    seen: set[str] = set()
    population: dict[str, int] = {}
    for line, row in _census_rows(path):
        zcta = _zcta(line, row)
        if zcta is None:
            continue
        if zcta[0] in seen:
            raise CensusFileError(f"line {line}: ZCTA5 {zcta[0]} is given twice")
        seen.add(zcta[0])
        population[zcta[0][:3]] = population.get(zcta[0][:3], 0) + zcta[1]
    if not population:
        raise CensusFileError(f"{path.name}: no ZCTA5 rows")
    return population


def write_zip3_population(
    population: Mapping[str, int], output: Path, *, source: str, vintage: str, table: str, command: str
) -> str:
    """Write the ``zip3,population`` table with its provenance notes, atomically; its SHA-256.

    The file appears whole or not at all: it is written next to ``output`` and renamed over it.
    """
    notes = [
        "# ZIP3 population table of de-identified exports (45 CFR 164.514(b)(2)(i)(B)): ZCTA5 totals summed by",
        f"# prefix; exports keep a prefix only with more than {MIN_POPULATION:,} people, else 000.",
        "# kind: population",
        f"# source: {source}",
        f"# vintage: {vintage}",
        f"# table: {table}",
        f"# built-by: {command}",
    ]
    body = "\n".join([*notes, "zip3,population", *(f"{key},{population[key]}" for key in sorted(population))]) + "\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(body)
        Path(temporary).replace(output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return hashlib.sha256(body.encode()).hexdigest()
