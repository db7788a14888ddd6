"""Small cells (45 CFR 164.514(b)(2)(ii), "actual knowledge"): no export record stands in a group of fewer than k.

Safe Harbor's list of eighteen identifiers is not the whole rule: the covered
entity must also not know that what remains could identify someone. A study of
a handful of people, each with sex, birth year, state and ZIP3, is close to
unique, so an export is k-anonymous over the quasi-identifiers it keeps
(:data:`QUASI_IDENTIFIERS`): every combination of them that appears in the
file appears at least k times (``DEIDENTIFIED_EXPORT_MIN_CELL``).

Records of a combination seen fewer than k times are generalised, one step at
a time and only as far as their group needs, in this order:

1. the ZIP3 becomes ``000``;
2. the birth year becomes a ten-year band (``1970-1979``; its age the matching
   band), never reaching 90 or more years back;
3. the state is dropped;
4. the record is suppressed (left out of the file).

A group is generalised as a whole, so a group that already has k records is
never broken up by another's generalisation (groups only merge). The plan is
computed from the count of each combination (a first pass over the
quasi-identifiers only: memory grows with the number of distinct
combinations, not of people); the file is written in a second pass. A study
with fewer than k eligible participants yields an empty file whose manifest
says every record was suppressed, not a refusal: the request then tells the
requester nothing the manifest does not.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from services.exports.safe_harbor import SUPPRESSED_ZIP3, DeidentifiedRecord

QUASI_IDENTIFIERS = ("sex", "birth_year", "state", "zip3")
BIRTH_YEAR_BAND = 10
GENERALISATION_STEPS = ("zip3", "birth_year", "state")  # applied in this order; after the last, suppression
_ZIP3_STEP, _BIRTH_YEAR_STEP, _STATE_STEP = (GENERALISATION_STEPS.index(name) + 1 for name in GENERALISATION_STEPS)
OLDEST_BANDED_AGE = 89

# (sex, birth year or "90+" or None, state, ZIP3): a birth year may also be a band, "1970-1979".
QuasiIdentifiers = tuple[str, int | str | None, str | None, str]


def min_cell() -> int:
    """The k of the export: ``DEIDENTIFIED_EXPORT_MIN_CELL`` (settings refuse less than the production floor).

    Raises:
        ValueError: A k below 1 (no cell can be smaller than one record).
    """
    k = int(settings.DEIDENTIFIED_EXPORT_MIN_CELL)
    if k < 1:
        raise ValueError("DEIDENTIFIED_EXPORT_MIN_CELL must be at least 1")
    return k


def quasi_identifiers(record: DeidentifiedRecord) -> QuasiIdentifiers:
    """The record's quasi-identifiers; a record with no birth year is keyed by its age (``90+`` or none)."""
    birth = record["birth_year"] if record["birth_year"] is not None else record["age"]
    return record["sex"], birth, record["state"], record["zip3"]


def birth_year_band(birth_year: int, export_year: int) -> tuple[int, int]:
    """The ten-year band of a birth year, cut so that it never reaches 90 or more years back."""
    start = birth_year - birth_year % BIRTH_YEAR_BAND
    return max(start, export_year - OLDEST_BANDED_AGE), start + BIRTH_YEAR_BAND - 1


def generalised(key: QuasiIdentifiers, steps: int, export_year: int) -> QuasiIdentifiers:
    """``key`` after the first ``steps`` generalisations of :data:`GENERALISATION_STEPS`."""
    sex, birth, state, zip3 = key
    if steps >= _ZIP3_STEP:
        zip3 = SUPPRESSED_ZIP3
    if steps >= _BIRTH_YEAR_STEP and isinstance(birth, int):
        low, high = birth_year_band(birth, export_year)
        birth = f"{low}-{high}"
    if steps >= _STATE_STEP:
        state = None
    return sex, birth, state, zip3


@dataclass
class CellPlan:
    """How far each combination of quasi-identifiers is generalised, and which are suppressed."""

    min_cell: int
    export_year: int
    steps: dict[QuasiIdentifiers, int] = field(default_factory=dict)
    suppressed: set[QuasiIdentifiers] = field(default_factory=set)

    def release(self, key: QuasiIdentifiers) -> QuasiIdentifiers | None:
        """What a record with ``key`` carries; None when suppressed (or unseen when the plan was made)."""
        if key in self.suppressed or key not in self.steps:
            return None
        return generalised(key, self.steps[key], self.export_year)


def _sizes(counts: Counter[QuasiIdentifiers], plan: CellPlan) -> Counter[QuasiIdentifiers]:
    sizes: Counter[QuasiIdentifiers] = Counter()
    for key, count in counts.items():
        sizes[generalised(key, plan.steps[key], plan.export_year)] += count
    return sizes


def plan_cells(counts: Counter[QuasiIdentifiers], *, min_cell: int, export_year: int) -> CellPlan:
    """Generalise, step by step, every group smaller than ``min_cell``; suppress what is still too small."""
    plan = CellPlan(min_cell=min_cell, export_year=export_year, steps=dict.fromkeys(counts, 0))
    for _ in GENERALISATION_STEPS:
        sizes = _sizes(counts, plan)
        small = [key for key in counts if sizes[generalised(key, plan.steps[key], export_year)] < min_cell]
        if not small:
            break
        for key in small:
            plan.steps[key] += 1
    sizes = _sizes(counts, plan)
    plan.suppressed = {key for key in counts if sizes[generalised(key, plan.steps[key], export_year)] < min_cell}
    return plan


def apply_release(record: DeidentifiedRecord, released: QuasiIdentifiers, export_year: int) -> DeidentifiedRecord:
    """The record with its quasi-identifiers as released; a banded birth year bands the age too."""
    _, birth, state, zip3 = released
    if isinstance(birth, str) and birth != record["age"]:
        low, high = (int(part) for part in birth.split("-"))
        record = {**record, "birth_year": birth, "age": f"{export_year - high}-{export_year - low}"}
    return {**record, "state": state, "zip3": zip3}


@dataclass
class CellTally:
    """What the manifest says of small cells: the k, and how many records each step touched."""

    min_cell: int
    generalised: Counter[str] = field(default_factory=Counter)
    records_suppressed: int = 0

    def count(self, original: QuasiIdentifiers, released: QuasiIdentifiers | None) -> None:
        """Count one record's generalisations (a field counts only where its value changed) or suppression."""
        if released is None:
            self.records_suppressed += 1
            return
        for name, before, after in zip(QUASI_IDENTIFIERS, original, released, strict=True):
            if before != after:
                self.generalised[name] += 1

    def as_manifest(self) -> dict[str, Any]:
        """The manifest's ``small_cells`` entry."""
        return {
            "rule": "every combination of the quasi-identifiers in the file occurs at least min_cell times",
            "min_cell": self.min_cell,
            "quasi_identifiers": list(QUASI_IDENTIFIERS),
            "generalisation_order": ["zip3 to 000", "birth_year to a 10-year band", "state dropped", "suppressed"],
            "records_generalised": {name: self.generalised[name] for name in QUASI_IDENTIFIERS},
            "records_suppressed": self.records_suppressed,
        }
