"""``zip3_table_build --census-file P1.csv --vintage 2020 --table P1``: the ZIP3 table from Census ZCTA5 totals.

The operator downloads the Census Bureau's total population by ZIP Code
Tabulation Area (table P1 of the 2020 Census, DHC or PL 94-171, geography
"all ZCTA5s", as CSV from data.census.gov: header rows, ``GEO_ID`` like
``860Z200US01001``, ``NAME`` like ``ZCTA5 01001``, total ``P1_001N``). The
command sums the totals by the first three digits and writes
``services/exports/data/zip3_population.csv`` (or ``--output``) with the
source, vintage and table in its header; exports then keep only prefixes
with more than 20,000 people. A malformed file is refused (exit status 1)
and nothing is written. A vintage older than 2020 is built, with a warning
on stderr (exit status 0): it is not the current Census data.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.commands import OperatorCommand
from services.exports.actions import zip3_table_rebuild
from services.exports.zip3 import MIN_POPULATION, ZIP3_POPULATION_FILE, CensusFileError

CURRENT_CENSUS = 2020  # the decennial Census the rule's "current publicly available data" means until 2030
DEFAULT_SOURCE = "U.S. Census Bureau, {vintage} Census, table {table} (total population) by ZCTA5, data.census.gov"


class Command(OperatorCommand):
    """Rebuild the ZIP3 population table from a Census file the operator supplies."""

    help = "Build the ZIP3 table of de-identified exports from a Census ZCTA5 total-population CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --census-file, --vintage, --table, --source, --output."""
        parser.add_argument("--census-file", required=True, type=Path, help="the data.census.gov CSV (P1 by ZCTA5)")
        parser.add_argument("--vintage", required=True, help="the Census year, e.g. 2020")
        parser.add_argument("--table", required=True, help="the Census table id, e.g. P1 or DECENNIALDHC2020.P1")
        parser.add_argument("--source", default="", help="where the file came from (default: names the Census)")
        parser.add_argument("--output", type=Path, default=ZIP3_POPULATION_FILE, help="where to write the table")

    def run(self, **options: Any) -> None:
        """Read and check the whole Census file, then write the table and record the rebuild."""
        census_file: Path = options["census_file"]
        vintage, table = str(options["vintage"]).strip(), str(options["table"]).strip()
        if not re.fullmatch(r"[0-9]{4}", vintage):
            raise CommandError("--vintage is the Census year, four digits (2020)")
        if not table:
            raise CommandError("--table names the Census table (P1)")
        if not census_file.is_file():
            raise CommandError(f"--census-file: {census_file} is not a file")
        source = str(options["source"]).strip() or DEFAULT_SOURCE.format(vintage=vintage, table=table)
        try:
            population, digest = zip3_table_rebuild(
                census_file=census_file,
                output=options["output"],
                source=" ".join(source.split()),
                vintage=vintage,
                table=" ".join(table.split()),
                actor_id=self.actor_id,
            )
        except (CensusFileError, UnicodeDecodeError) as error:
            raise CommandError(f"{census_file.name}: {error}; nothing was written") from None
        if int(vintage) < CURRENT_CENSUS:
            self.stderr.write(
                f"warning: vintage {vintage} is older than the {CURRENT_CENSUS} Census; Safe Harbor names the "
                f"current Census data: rebuild from the {CURRENT_CENSUS} P1 file"
            )
        kept = sum(1 for count in population.values() if count > MIN_POPULATION)
        self.stdout.write(
            f"{options['output']}: {len(population)} prefixes, {kept} with more than {MIN_POPULATION:,} people "
            f"(sha256 {digest})"
        )
