"""Small cells (164.514(b)(2)(ii)): every combination of quasi-identifiers in a file occurs at least k times."""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django_tenants.utils import schema_context
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings
from rest_framework.test import APIClient

from config.settings import base
from security.models import User
from services.exports import actions, selectors
from services.exports.cells import (
    QuasiIdentifiers,
    apply_release,
    birth_year_band,
    min_cell,
    plan_cells,
    quasi_identifiers,
)
from services.exports.safe_harbor import ParticipantInput, deidentify_participant
from services.exports.tasks import deidentified_export_task
from services.studies.models import Study
from tenants.models import Community
from tests.factories import ConsentFactory, ParticipantFactory, StudyFactory
from tests.support.exports import CONSENTED, determine, downloaded, parse, request_export, sealed_files

EXPORT_YEAR = 2026
keys = st.tuples(
    st.sampled_from(["female", "male"]),
    st.one_of(st.integers(1937, 2026), st.just("90+"), st.none()),
    st.sampled_from(["MA", "NH", None]),
    st.sampled_from(["021", "100", "000"]),
)


@settings(max_examples=300, deadline=None)
@given(counts=st.dictionaries(keys, st.integers(1, 12), max_size=30), k=st.integers(1, 12))
def test_every_released_combination_occurs_at_least_k_times_and_no_group_is_broken_up(
    counts: dict[QuasiIdentifiers, int], k: int
) -> None:
    plan = plan_cells(Counter(counts), min_cell=k, export_year=EXPORT_YEAR)

    released: Counter[QuasiIdentifiers] = Counter()
    for key, count in counts.items():
        if (out := plan.release(key)) is not None:
            released[out] += count
    assert all(size >= k for size in released.values())
    for key, count in counts.items():
        if count >= k:  # a group that was big enough keeps its values
            assert plan.release(key) == key
    assert sum(released.values()) + sum(counts[key] for key in plan.suppressed) == sum(counts.values())


def test_small_groups_lose_the_zip3_first_then_the_birth_year_then_the_state_then_the_record() -> None:
    counts: Counter[QuasiIdentifiers] = Counter(
        {
            ("female", 1976, "NH", "036"): 1,
            ("female", 1976, "NH", "000"): 1,  # with the first, a group of 2 once the ZIP3 goes
            ("male", 1971, "MA", "021"): 1,
            ("male", 1978, "MA", "021"): 1,  # a band 1970-1979 makes these two a group
            ("female", 1950, "MA", "021"): 1,
            ("female", 1955, "NH", "100"): 1,  # only without the state
            ("male", 1960, "MA", "021"): 1,  # alone whatever is done: suppressed
        }
    )

    plan = plan_cells(counts, min_cell=2, export_year=EXPORT_YEAR)

    assert plan.release(("female", 1976, "NH", "036")) == ("female", 1976, "NH", "000")
    assert plan.release(("male", 1971, "MA", "021")) == ("male", "1970-1979", "MA", "000")
    assert plan.release(("female", 1950, "MA", "021")) == ("female", "1950-1959", None, "000")
    assert plan.release(("male", 1960, "MA", "021")) is None
    assert plan.release(("male", 1999, "MA", "021")) is None  # not seen when the plan was made


def test_a_birth_year_band_never_reaches_90_years_back() -> None:
    assert birth_year_band(1975, EXPORT_YEAR) == (1970, 1979)
    assert birth_year_band(1938, EXPORT_YEAR) == (1937, 1939)


def test_a_banded_birth_year_bands_the_age_too() -> None:
    record = deidentify_participant(
        {"date_of_birth": date(1978, 5, 1), "sex": "m"}, research_id="R-1", export_year=2026
    )

    banded = apply_release(record, ("male", "1970-1979", None, "000"), 2026)

    assert (banded["birth_year"], banded["age"], banded["state"], banded["zip3"]) == ("1970-1979", "47-56", None, "000")
    assert quasi_identifiers(record) == ("male", 1978, None, "000")


def test_k_comes_from_the_settings_and_cannot_be_below_one(settings: Settings) -> None:
    settings.DEIDENTIFIED_EXPORT_MIN_CELL = 5
    assert min_cell() == 5
    settings.DEIDENTIFIED_EXPORT_MIN_CELL = 0
    with pytest.raises(ValueError, match="at least 1"):
        min_cell()


def test_the_environment_cannot_set_k_below_the_floor_of_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """base.py clamps DEIDENTIFIED_EXPORT_MIN_CELL to its floor, as it does the audit retention."""
    monkeypatch.setenv("DEIDENTIFIED_EXPORT_MIN_CELL", "1")
    try:
        reloaded = importlib.reload(base)
        assert reloaded.DEIDENTIFIED_EXPORT_MIN_CELL == reloaded.DEIDENTIFIED_EXPORT_MIN_CELL_FLOOR == 2
    finally:
        monkeypatch.delenv("DEIDENTIFIED_EXPORT_MIN_CELL")
        importlib.reload(base)


# --- over the API ---------------------------------------------------------------------------------


@pytest.fixture
def cohort(alpha: Community) -> Study:
    """Alpha's study of six consented people: five women born 1976 in NH (03755), and one man born 1950."""
    study = StudyFactory.create(community=alpha, title="Cohort", protocol_number="COH-01")
    people: list[dict[str, Any]] = [
        {"date_of_birth": date(1976, month, 9), "sex": "F", "state": "NH", "postal_code": "03755"}
        for month in range(1, 6)
    ]
    people.append({"date_of_birth": date(1950, 3, 3), "sex": "M", "state": "MA", "postal_code": "02139"})
    with schema_context("alpha"):
        for fields in people:
            participant = ParticipantFactory.create(study=study, **fields)
            ConsentFactory.create(participant=participant, **CONSENTED)
    return study


@pytest.mark.usefixtures("built_at_once", "export_dir")
def test_the_lone_man_is_suppressed_at_k_5_and_the_manifest_says_what_was_done(
    settings: Settings,
    pi: tuple[APIClient, User],
    officer: tuple[APIClient, User],
    cohort: Study,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    settings.DEIDENTIFIED_EXPORT_MIN_CELL = 5
    client, _ = pi
    export = request_export(client, cohort, django_capture_on_commit_callbacks, "jsonl")
    assert determine(officer[0], export["id"]).status_code == 201

    people = parse("jsonl", downloaded(client, export["id"]).decode())
    manifest: dict[str, Any] = client.get(f"/api/v1/exports/{export['id']}/manifest/").json()

    assert [(p["sex"], p["birth_year"], p["state"], p["zip3"]) for p in people] == [("female", 1976, "NH", "037")] * 5
    assert manifest["participants"] == 5
    assert manifest["small_cells"]["min_cell"] == 5
    assert manifest["small_cells"]["records_suppressed"] == 1
    assert manifest["small_cells"]["records_generalised"] == {"sex": 0, "birth_year": 0, "state": 0, "zip3": 0}


@pytest.mark.usefixtures("built_at_once", "export_dir")
def test_a_study_with_fewer_than_k_participants_exports_an_empty_file_that_says_so(
    settings: Settings,
    pi: tuple[APIClient, User],
    officer: tuple[APIClient, User],
    cohort: Study,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    settings.DEIDENTIFIED_EXPORT_MIN_CELL = 11
    client, _ = pi
    export = request_export(client, cohort, django_capture_on_commit_callbacks, "csv")
    assert determine(officer[0], export["id"]).status_code == 201

    text = downloaded(client, export["id"]).decode()
    manifest = client.get(f"/api/v1/exports/{export['id']}/manifest/").json()

    assert text.splitlines() == [
        "research_id,sex,birth_year,age,state,zip3,code_system,code,value_number,unit,effective_year"
    ]
    assert (manifest["participants"], manifest["small_cells"]["records_suppressed"]) == (0, 6)
    assert client.get(f"/api/v1/exports/{export['id']}/").json()["participant_count"] == 0


@pytest.mark.usefixtures("built_at_once", "export_dir")
def test_generalised_fields_are_counted_in_the_manifest(
    settings: Settings,
    pi: tuple[APIClient, User],
    officer: tuple[APIClient, User],
    cohort: Study,
    alpha: Community,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    """Two more women in NH, of another ZIP3 and birth year each, form a group of 2 once both are generalised."""
    with schema_context("alpha"):
        for born in (date(1972, 1, 1), date(1979, 1, 1)):
            participant = ParticipantFactory.create(
                study=cohort, date_of_birth=born, sex="F", state="NH", postal_code="03301"
            )
            ConsentFactory.create(participant=participant, **CONSENTED)
    settings.DEIDENTIFIED_EXPORT_MIN_CELL = 2
    client, _ = pi
    export = request_export(client, cohort, django_capture_on_commit_callbacks, "jsonl")
    assert determine(officer[0], export["id"]).status_code == 201

    people = parse("jsonl", downloaded(client, export["id"]).decode())
    cells = client.get(f"/api/v1/exports/{export['id']}/manifest/").json()["small_cells"]

    assert Counter((p["birth_year"], p["age"], p["zip3"]) for p in people) == {
        (1976, 50, "037"): 5,
        ("1970-1979", "47-56", "000"): 2,
    }
    assert cells["records_generalised"] == {"sex": 0, "birth_year": 2, "state": 0, "zip3": 2}
    assert cells["records_suppressed"] == 1


def test_a_group_that_shrinks_between_the_two_passes_fails_the_build_and_stores_no_file(
    settings: Settings,
    pi: tuple[APIClient, User],
    cohort: Study,
    export_dir: Path,
    queued: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    """A woman of the group of five withdraws after the plan is made: the file would hold a group of four."""
    settings.DEIDENTIFIED_EXPORT_MIN_CELL = 5
    real = selectors.export_participants

    def one_withdraws(study: Study, *, with_observations: bool = True) -> Iterator[ParticipantInput]:
        gone = not with_observations  # the first pass sees everyone; the second misses the first woman
        for person in real(study, with_observations=with_observations):
            if not gone and person.get("sex") == "F":
                gone = True
                continue
            yield person

    monkeypatch.setattr(actions, "export_participants", one_withdraws)
    export_id = request_export(pi[0], cohort, django_capture_on_commit_callbacks)["id"]

    with pytest.raises(actions.CellsChanged):
        deidentified_export_task(**queued[0])

    status = pi[0].get(f"/api/v1/exports/{export_id}/").json()
    assert (status["status"], status["error"]) == ("failed", "CellsChanged")
    assert sealed_files(export_dir) == []
