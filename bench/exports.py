"""``make bench`` (exports part): building a de-identified study export, and the record rules alone.

Two figures:

- **The build**: one study of ``BENCH_EXPORT_PARTICIPANTS`` participants
  (default 5,000), each with every PHI field, a research consent and five
  coded observations, exported as JSON Lines by the same function the Celery
  task calls (read, decrypt, de-identify, seal, store, manifest). Reported:
  wall time, participants per second, and the peak of Python's allocations
  during the build (``tracemalloc``), which shows whether memory grows with
  the study.
- **The rules alone**: :func:`services.exports.safe_harbor.deidentify_participant`
  over plain dicts, records per second, no database or keys.

Uses a scratch community (schema ``benchexports``) in the test database,
dropped at the end.
"""

from __future__ import annotations

import datetime
import os
import tempfile
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ.setdefault("TEST_LOCAL_KEY_FILE", str(Path(tempfile.gettempdir()) / "cgw-bench-exports-keys.json"))

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_tenants.utils import schema_context  # noqa: E402

from bench.machine import stolen  # noqa: E402
from bench.scratch import drop_scratch_community  # noqa: E402
from services.consents.models import Consent  # noqa: E402
from services.exports.actions import Recipient, deidentified_export_build, deidentified_export_request  # noqa: E402
from services.exports.safe_harbor import ExportRules, ParticipantInput, deidentify_participant  # noqa: E402
from services.observations.models import Observation  # noqa: E402
from services.participants.models import Participant  # noqa: E402
from services.studies.models import Study, StudyStatus  # noqa: E402
from tenants.lifecycle import community_create  # noqa: E402

SLUG = "benchexports"
PARTICIPANTS = int(os.environ.get("BENCH_EXPORT_PARTICIPANTS", "5000"))
RULE_RECORDS = 20_000
OBSERVATIONS = (  # (code system, code, value, unit): real LOINC lab codes
    ("http://loinc.org", "2345-7", Decimal("5.4"), "mmol/L"),
    ("http://loinc.org", "718-7", Decimal("13.9"), "g/dL"),
    ("http://loinc.org", "2093-3", Decimal("190"), "mg/dL"),
    ("http://loinc.org", "8480-6", Decimal("121"), "mm[Hg]"),
    ("http://loinc.org", "8867-4", Decimal("72"), "/min"),
)
STATES = ("NY", "CA", "TX", "MA", "WA")
ZIPS = ("10001", "94110", "73301", "02139", "98101", "60601", "30301", "80202")


def person(number: int) -> dict[str, Any]:
    """Every PHI field of one participant; quasi-identifiers spread like a real cohort's."""
    return {
        "given_name": f"Ada{number:05d}",
        "family_name": f"Lovelace {number:05d}",
        "date_of_birth": datetime.date(1940, 1, 1) + datetime.timedelta(days=(number * 137) % 25000),
        "sex": ("female", "male")[number % 2],
        "mrn": f"MRN-{number:07d}",
        "email": f"ada{number:05d}@example.org",
        "phone": f"+1 212 555 {number % 10000:04d}",
        "street_address": f"{number + 1} Main Street",
        "city": "Springfield",
        "state": STATES[number % len(STATES)],
        "postal_code": ZIPS[number % len(ZIPS)],
    }


def drop_community() -> None:
    """Remove the scratch community, its schema and its key (what an interrupted run left too)."""
    drop_scratch_community(SLUG)


def seed() -> Study:
    """The community and one study of :data:`PARTICIPANTS`, each with a research consent and observations."""
    community_create(slug=SLUG, name="Export bench", domain=f"{SLUG}.localhost", actor_id="operator:bench")
    signed = timezone.now() - datetime.timedelta(days=30)
    with schema_context(SLUG):
        study = Study.objects.create(title="Bench cohort", protocol_number="BENCH-EXP-01", status=StudyStatus.ACTIVE)
        for number in range(PARTICIPANTS):
            participant = Participant.objects.create(study=study, **person(number))
            Consent.objects.create(
                participant=participant, scopes=["research_use"], form_version="v3", signed_at=signed
            )
            Observation.objects.bulk_create(
                Observation(
                    participant=participant,
                    code_system=system,
                    code=code,
                    value_number=value,
                    unit=unit,
                    effective_date=datetime.date(2025, 1 + number % 12, 1 + number % 28),
                )
                for system, code, value, unit in OBSERVATIONS
            )
    return study


def request_export(study: Study) -> Any:
    """A pending JSON Lines export of ``study``, as the API records one."""
    return deidentified_export_request(
        study=study,
        export_format="jsonl",
        requested_by="bench",
        recipient=Recipient(name="Bench Recipient", organisation="Bench University"),
        purpose="Measuring how fast a study's dataset is built.",
    )


def measure_build(study: Study) -> None:
    """Build one export of the whole study; print time, rate and peak Python memory."""
    with schema_context(SLUG):
        export = request_export(study)
        tracemalloc.start()
        with stolen() as steal:
            started = time.perf_counter()
            built = deidentified_export_build(export)
            elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(
        f"export build, {PARTICIPANTS:,} participants x {len(OBSERVATIONS)} observations: {elapsed:6.2f} s"
        f"  {PARTICIPANTS / elapsed:8,.0f} participants/s  peak Python memory {peak / 2**20:6.1f} MiB"
        f"  ({built.participant_count:,} exported, k = {settings.DEIDENTIFIED_EXPORT_MIN_CELL}; {steal})"
    )


def measure_rules() -> None:
    """The de-identification rules alone over plain dicts: records per second."""
    today = datetime.date(2026, 12, 1)
    records: list[ParticipantInput] = [
        {
            **person(number),  # type: ignore[typeddict-item]
            "observations": [
                {"code_system": system, "code": code, "value_number": value, "unit": unit, "effective_date": today}
                for system, code, value, unit in OBSERVATIONS
            ],
        }
        for number in range(RULE_RECORDS)
    ]
    rules = ExportRules.current()  # as a build does: the ZIP3 table and value set resolved once
    started = time.perf_counter()
    for record in records:
        deidentify_participant(record, research_id="R-BENCH", export_year=today.year, rules=rules)
    elapsed = time.perf_counter() - started
    print(f"Safe Harbor rules alone: {RULE_RECORDS / elapsed:10,.0f} records/s ({len(OBSERVATIONS)} observations each)")


def main() -> None:
    """Create the scratch community, measure, drop it."""
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0, keepdb=True)
    drop_community()
    try:
        seeded = time.perf_counter()
        study = seed()
        print(f"(seeded {PARTICIPANTS:,} participants in {time.perf_counter() - seeded:.0f} s)")
        measure_build(study)
        measure_rules()
    finally:
        drop_community()


if __name__ == "__main__":
    main()
