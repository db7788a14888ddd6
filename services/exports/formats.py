"""The de-identified dataset as CSV or JSON Lines, written one record at a time.

- ``csv``: a header, then one row per observation with its participant's
  columns repeated; a participant without observations has one row with the
  observation columns empty.
- ``jsonl``: one JSON object per participant, observations nested.

Numbers keep their exact decimal text (a string in JSON), so no value is
rounded through a float. Nothing here adds a column the record does not have.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

from services.exports.safe_harbor import DeidentifiedObservation, DeidentifiedRecord

PARTICIPANT_COLUMNS = ("research_id", "sex", "birth_year", "age", "state", "zip3")
OBSERVATION_COLUMNS = ("code_system", "code", "value_number", "unit", "effective_year")
CSV_COLUMNS = PARTICIPANT_COLUMNS + OBSERVATION_COLUMNS
EXTENSIONS = {"csv": "csv", "jsonl": "jsonl"}
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


def decimal_text(value: Decimal | None) -> str | None:
    """A decimal as plain text without exponent or trailing zeros (``12.500000`` is ``12.5``)."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _observation_json(observation: DeidentifiedObservation) -> dict[str, Any]:
    return {**observation, "value_number": decimal_text(observation["value_number"])}


def record_json(record: DeidentifiedRecord) -> dict[str, Any]:
    """The JSON form of a record."""
    return {**record, "observations": [_observation_json(item) for item in record["observations"]]}


def jsonl_lines(records: Iterable[DeidentifiedRecord]) -> Iterator[str]:
    """One compact JSON object per participant."""
    for record in records:
        yield json.dumps(record_json(record), separators=(",", ":"), ensure_ascii=False) + "\n"


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def csv_lines(records: Iterable[DeidentifiedRecord]) -> Iterator[str]:
    """A header, then one row per observation (or one bare row for a participant without any)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def row(values: Iterable[object]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_cell(value) for value in values])
        return buffer.getvalue()

    yield row(CSV_COLUMNS)
    for record in records:
        person = [record[column] for column in PARTICIPANT_COLUMNS]  # type: ignore[literal-required]  # the columns are the TypedDict's keys, named in a tuple
        observations = [_observation_json(item) for item in record["observations"]] or [{}]
        for observation in observations:
            yield row(person + [observation.get(column) for column in OBSERVATION_COLUMNS])


LINES: dict[str, Callable[[Iterable[DeidentifiedRecord]], Iterator[str]]] = {"csv": csv_lines, "jsonl": jsonl_lines}
