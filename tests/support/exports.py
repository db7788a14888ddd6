"""De-identified exports in tests: the people of the study every export test uses, and asking for and reading exports.

Augusta is over 89 and Grace lives under a restricted ZIP prefix; the PHI of
both must never reach an export file, at rest or downloaded.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from django_tenants.utils import schema_context
from pytest_django import DjangoCaptureOnCommitCallbacks
from rest_framework.test import APIClient

from services.observations.models import Observation
from services.participants.models import Participant
from services.studies.models import Study
from tests.factories import ObservationFactory

EXPORTS = "/api/v1/exports/"

ADA: dict[str, Any] = {
    "given_name": "Augusta",
    "family_name": "Lovelace",
    "date_of_birth": date(1930, 12, 10),  # over 89
    "sex": "female",
    "mrn": "MRN0042137",
    "email": "augusta@example.org",
    "phone": "(617) 555-0142",
    "street_address": "12 Marlborough Street",
    "city": "Cambridge",
    "state": "MA",
    "postal_code": "02139-4307",
}
GRACE: dict[str, Any] = {
    "given_name": "Graceful",
    "family_name": "Hopperton",
    "date_of_birth": date(1976, 12, 9),
    "sex": "F",
    "mrn": "MRN0099881",
    "email": "grace@example.org",
    "phone": "617.555.0199",
    "street_address": "1 Shelter Road",
    "city": "Hanover",
    "state": "NH",
    "postal_code": "03601",  # a restricted prefix
}
NOTE = "Augusta Lovelace called from (617) 555-0142 about the 1930-12-10 visit"
PHI = [str(value) for person in (ADA, GRACE) for key, value in person.items() if key not in ("sex", "state")]
# The ``ready_export`` fixture: ``(export_format="csv")`` -> the 202 body of an export that was then built at once.
ReadyExport = Callable[..., dict[str, Any]]

# Who receives an export, and why: what every export request in these tests states.
RECIPIENT: dict[str, str] = {
    "name": "Dana Reviewer",
    "organisation": "Example University Sleep Lab",
    "address": "1 Campus Drive, Springfield",
}
PURPOSE = "Secondary analysis of sleep duration against glucose, under the lab's data use agreement."
STATEMENT = "I have no actual knowledge that this file could be used, alone or with other data, to identify anyone."


def export_body(study: Study, export_format: str = "csv", **fields: Any) -> dict[str, Any]:
    """The body of an export request for ``study``, or what ``fields`` change."""
    return {"study": str(study.id), "format": export_format, "recipient": RECIPIENT, "purpose": PURPOSE, **fields}


# Research use and contact, version 2 of the form: what Augusta, Grace and the withdrawn participant signed.
CONSENTED: dict[str, Any] = {"scopes": ["research_use", "contact"], "form_version": "v2"}


def observe(participant: Participant, **fields: Any) -> Observation:
    """A glucose result for ``participant`` (with :data:`NOTE`, which names Augusta), or what ``fields`` change."""
    return ObservationFactory.create(
        **{
            "participant": participant,
            "code_system": "http://loinc.org",
            "code": "2345-7",
            "display": "Glucose",
            "value_number": Decimal("5.400000"),
            "unit": "mmol/L",
            "effective_date": date(2025, 3, 14),
            "note": NOTE,
            **fields,
        }
    )


def run_committed(callbacks: Iterable[Callable[[], Any]]) -> None:
    """Run a request's on-commit callbacks where they run in production: in the community's schema."""
    with schema_context("alpha"):
        for callback in callbacks:
            callback()


def request_export(
    client: APIClient,
    study: Study,
    captured: DjangoCaptureOnCommitCallbacks,
    export_format: str = "csv",
) -> dict[str, Any]:
    """Ask for an export of ``study`` (asserting 202) and run what its commit queued; the 202 body."""
    with captured() as callbacks:
        accepted = client.post(EXPORTS, export_body(study, export_format), format="json")
    assert accepted.status_code == 202, accepted.content
    run_committed(callbacks)
    body: dict[str, Any] = accepted.json()
    return body


def determine(officer: APIClient, export_id: str, **fields: Any) -> Any:
    """An officer's determination of an export, naming the manifest they were shown; the response."""
    review = officer.get(f"{EXPORTS}{export_id}/determination/")
    assert review.status_code == 200, review.content
    body = {"statement": STATEMENT, "manifest_sha256": review.json()["export"]["manifest_sha256"], **fields}
    return officer.post(f"{EXPORTS}{export_id}/determination/", body, format="json")


def downloaded(client: APIClient, export_id: str) -> bytes:
    """The downloaded file of an export (asserting 200)."""
    response = client.get(f"{EXPORTS}{export_id}/download/")
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content)  # type: ignore[attr-defined]


def sealed_files(root: Path) -> list[Path]:
    """Every file under ``root``."""
    return [path for path in root.rglob("*") if path.is_file()]


def _number(cell: str) -> int | str | None:
    """A CSV cell of a year or an age: a number, a band (``1970-1979``) or ``90+`` as text, None when empty."""
    return int(cell) if cell.isdigit() else cell or None


def parse(export_format: str, text: str) -> list[dict[str, Any]]:
    """The participants of a downloaded file, in the JSON Lines shape."""
    if export_format == "jsonl":
        return [json.loads(line) for line in text.splitlines()]
    people: dict[str, dict[str, Any]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        person = people.setdefault(
            row["research_id"],
            {
                "research_id": row["research_id"],
                "sex": row["sex"],
                "birth_year": _number(row["birth_year"]),
                "age": _number(row["age"]),
                "state": row["state"] or None,
                "zip3": row["zip3"],
                "observations": [],
            },
        )
        if row["code"]:
            person["observations"].append(
                {
                    "code": row["code"],
                    "unit": row["unit"] or None,
                    # A year, "<=YYYY" for one 90 or more years back, or empty.
                    "effective_year": _year(row["effective_year"]),
                }
            )
    return list(people.values())


def _year(cell: str) -> int | str | None:
    if not cell:
        return None
    return int(cell) if cell.isdigit() else cell
