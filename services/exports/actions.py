"""Writes of de-identified exports: asking for one, building it (the task calls that), and the determination.

The build makes two passes over the study's consented participants. The first
reads only the quasi-identifiers and counts each combination, from which
:func:`services.exports.cells.plan_cells` decides how far each is generalised
or whether it is suppressed; the second writes the records under that plan.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import Conflict, Forbidden, NotFound, ServiceUnavailable
from core.exports import ExportStatus
from security.audit.context import annotate
from security.audit.events import platform_record
from security.audit.staging import record
from services.exports.cells import (
    CellPlan,
    CellTally,
    QuasiIdentifiers,
    apply_release,
    min_cell,
    plan_cells,
    quasi_identifiers,
)
from services.exports.errors import ExportErrorCode
from services.exports.formats import EXTENSIONS, LINES
from services.exports.models import DeidentifiedExport, ExportDetermination
from services.exports.safe_harbor import (
    CODE_GENERALISED,
    DeidentifiedRecord,
    ExportRules,
    ResearchIds,
    deidentify_participant,
    identifier_handling,
)
from services.exports.sealing import file_aad
from services.exports.selectors import (
    DETERMINED_MANIFEST_PREFIX,
    excluded_participant_count,
    export_participants,
    manifest_sha256,
)
from services.exports.storage import get_storage, storage_key
from services.exports.terminology import DropReason
from services.exports.zip3 import census_zip3_population, write_zip3_population
from services.studies.models import Study, StudyTeamMember
from vault.keys import current_community, write_key
from vault.sealing import SealedWriter

MANIFEST_TYPE = "deidentified-export/v2"
METHOD = (
    "De-identification under 45 CFR 164.514(b)(2): the eighteen identifiers of (b)(2)(i) removed or generalised "
    "(Safe Harbor), and small cells generalised or suppressed (k-anonymity over the quasi-identifiers kept). "
    "Whether the covered entity has actual knowledge that the file could identify anyone ((b)(2)(ii)) is the "
    "determination a compliance officer signs off; the file may be downloaded only after it."
)
RESEARCH_ID_NOTE = "drawn at random for this export (secrets); derived from no identifier (45 CFR 164.514(c))"
DATES_NOTE = (
    "ages are export_year minus birth_year (year arithmetic), so the export's day narrows no birthday; "
    "90 or more years back is 90+ with no birth year"
)


@dataclass(frozen=True)
class Recipient:
    """Who will receive an export's file: a person, their organisation, and optionally an address."""

    name: str
    organisation: str
    address: str = ""


def deidentified_export_request(
    *, study: Study, export_format: str, requested_by: str, recipient: Recipient, purpose: str
) -> DeidentifiedExport:
    """Record the request (pending), naming its recipient and purpose; the caller queues its build on commit."""
    return DeidentifiedExport.objects.create(
        study=study,
        format=export_format,
        requested_by=requested_by,
        recipient_name=recipient.name,
        recipient_organisation=recipient.organisation,
        recipient_address=recipient.address,
        purpose=purpose,
    )


class CellsChanged(Exception):
    """Participants left the study between the build's two passes, so a group fell below k: build again."""


@dataclass
class _Tally:
    participants: int = 0
    observations: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Written:
    size: int
    sha256: str
    key_version: int


def _cell_plan(study: Study, *, export_year: int, rules: ExportRules) -> CellPlan:
    """The first pass: count each combination of quasi-identifiers (observations are not even loaded)."""
    counts: Counter[QuasiIdentifiers] = Counter()
    for participant in export_participants(study, with_observations=False):
        built = deidentify_participant(participant, research_id="", export_year=export_year, rules=rules)
        counts[quasi_identifiers(built)] += 1
    return plan_cells(counts, min_cell=min_cell(), export_year=export_year)


def _records(
    study: Study, *, export_year: int, plan: CellPlan, tally: _Tally, cells: CellTally, rules: ExportRules
) -> Iterator[DeidentifiedRecord]:
    """The second pass: each participant's record under the plan; a suppressed one is left out entirely.

    Raises:
        CellsChanged: After the last record, when a group came out smaller than k (participants withdrew
            between the passes); the file is then never stored.
    """
    research_ids = ResearchIds()
    released_sizes: Counter[QuasiIdentifiers] = Counter()
    for participant in export_participants(study):
        dropped: Counter[str] = Counter()
        built = deidentify_participant(
            participant, research_id=research_ids.issue(), export_year=export_year, tally=dropped, rules=rules
        )
        key = quasi_identifiers(built)
        released = plan.release(key)  # None also for a participant who consented between the passes
        cells.count(key, released)
        if released is None:
            continue
        tally.participants += 1
        tally.observations += len(built["observations"])
        tally.dropped.update(dropped)
        released_sizes[released] += 1
        yield apply_release(built, released, export_year)
    if any(size < plan.min_cell for size in released_sizes.values()):
        raise CellsChanged("a group of the file came out smaller than k")


def _write(export: DeidentifiedExport, community: str, records: Iterator[DeidentifiedRecord], key: str) -> _Written:
    """Stream the records through the chosen format and the sealer into storage under ``key``; hash the plaintext."""
    version, cipher = write_key(community)
    digest, size = hashlib.sha256(), 0
    with get_storage().writer(key) as sink:
        sealer = SealedWriter(
            sink,
            cipher=cipher,
            key_version=version,
            aad=file_aad(community=community, export_id=str(export.id), key_version=version),
            chunk_bytes=settings.DEIDENTIFIED_EXPORT_CHUNK_BYTES,
        )
        for line in LINES[export.format](records):
            data = line.encode("utf-8")
            digest.update(data)
            size += len(data)
            sealer.write(data)
        sealer.close()
    return _Written(size=size, sha256=digest.hexdigest(), key_version=version)


def _manifest(
    export: DeidentifiedExport,
    community: str,
    *,
    export_year: int,
    tally: _Tally,
    cells: CellTally,
    written: _Written,
    rules: ExportRules,
) -> dict[str, Any]:
    return {
        "type": MANIFEST_TYPE,
        "export_id": str(export.id),
        "community": community,
        "study": str(export.study_id),
        "format": export.format,
        "file_name": export.file_name,
        "method": METHOD,
        "recipient": {
            "name": export.recipient_name,
            "organisation": export.recipient_organisation,
            "address": export.recipient_address,
        },
        "purpose": export.purpose,
        "generated_at": timezone.now().isoformat(),
        "export_year": export_year,
        "dates": DATES_NOTE,
        "participants": tally.participants,
        "participants_excluded_without_research_consent": excluded_participant_count(export.study),
        "observations": tally.observations,
        "observations_dropped": {str(reason): tally.dropped[str(reason)] for reason in DropReason},
        "codes_generalised_to_category": tally.dropped[CODE_GENERALISED],
        "small_cells": cells.as_manifest(),
        "identifiers": identifier_handling(),
        "zip3_table": rules.zip3.provenance(),
        "value_set": {
            "files": list(rules.value_set.files),
            "rule": "a code is exported only if a file here lists it (ICD-10: or its listed category); "
            "a condition carries no value and no unit",
        },
        "research_ids": RESEARCH_ID_NOTE,
        "bytes": written.size,
        "sha256": written.sha256,
        "encryption_at_rest": {
            "algorithm": "AES-256-GCM",
            "key": "community data key",
            "key_version": written.key_version,
            "chunk_bytes": settings.DEIDENTIFIED_EXPORT_CHUNK_BYTES,
        },
    }


def _fail(export: DeidentifiedExport, error: Exception, key: str) -> None:
    """Mark the export failed, unless another build has finished it meanwhile; drop this attempt's file."""
    get_storage().delete(key)
    DeidentifiedExport.objects.filter(pk=export.pk, status=ExportStatus.PENDING).update(
        status=ExportStatus.FAILED, error=type(error).__name__, finished_at=timezone.now()
    )
    export.refresh_from_db()


def _finish(export: DeidentifiedExport, key: str, manifest: dict[str, Any], tally: _Tally) -> DeidentifiedExport:
    """Save the build, only if the export is still pending; a build that lost the race deletes its own file.

    Two builds of one export can run at once (a message redelivered while the
    first worker is still at it): each writes its own key, and only the first
    to reach this update names its file and manifest on the row, so the file
    downloaded is the one the saved manifest hashes (and the officer signed).
    """
    won = DeidentifiedExport.objects.filter(pk=export.pk, status=ExportStatus.PENDING).update(
        status=ExportStatus.READY,
        finished_at=timezone.now(),
        file_name=export.file_name,
        manifest=manifest,
        participant_count=tally.participants,
        observation_count=tally.observations,
        storage_key=key,
    )
    if not won:
        get_storage().delete(key)
    export.refresh_from_db()
    return export


def deidentified_export_build(export: DeidentifiedExport) -> DeidentifiedExport:
    """Build ``export`` in the current community; record success or a PHI-free failure.

    A dependency that is down (the key service, say) leaves the export
    pending and is raised for the task to retry; anything else marks it
    failed with the error's class name, which carries no data. Every build
    attempt writes a storage key of its own and saves only if the export is
    still pending (:func:`_finish`).
    """
    community = current_community()
    export_year = timezone.now().year
    rules = ExportRules.current()
    tally, cells = _Tally(), CellTally(min_cell=0)
    export.file_name = f"deidentified-export-{export.id}.{EXTENSIONS[export.format]}"
    key = storage_key(
        community=community, export_id=str(export.id), extension=EXTENSIONS[export.format], attempt=uuid.uuid4().hex
    )
    try:
        plan = _cell_plan(export.study, export_year=export_year, rules=rules)
        cells.min_cell = plan.min_cell
        records = _records(export.study, export_year=export_year, plan=plan, tally=tally, cells=cells, rules=rules)
        written = _write(export, community, records, key)
        manifest = _manifest(
            export, community, export_year=export_year, tally=tally, cells=cells, written=written, rules=rules
        )
    except ServiceUnavailable:
        get_storage().delete(key)
        raise
    except Exception as error:
        _fail(export, error, key)
        raise
    return _finish(export, key, manifest, tally)


# --- the determination ------------------------------------------------------------------------------


def _determinable(export_id: Any) -> DeidentifiedExport:
    export = DeidentifiedExport.objects.select_for_update().filter(pk=export_id).first()
    if export is None:
        raise NotFound("No such export.", code=ExportErrorCode.NOT_FOUND)
    return export


def _check_determinable(export: DeidentifiedExport, covered_sha256: str) -> None:
    if export.status != ExportStatus.READY or export.manifest is None:
        raise Conflict(f"The export is {export.status}.", code=ExportErrorCode.NOT_READY)
    if ExportDetermination.objects.filter(export=export).exists():
        raise Conflict("The export's determination is already made.", code=ExportErrorCode.ALREADY_DETERMINED)
    if manifest_sha256(export.manifest) != covered_sha256:
        raise Conflict(
            "The manifest is not the one the determination names; review it again.",
            code=ExportErrorCode.MANIFEST_MISMATCH,
        )


def _conflict_of_interest(export: DeidentifiedExport, officer_id: str) -> tuple[ExportErrorCode, str] | None:
    """Why this officer may not determine this export: they asked for it, or they are on the study's team."""
    if str(export.requested_by) == officer_id:
        return ExportErrorCode.SELF_DETERMINATION, "Nobody determines an export they asked for."
    if StudyTeamMember.objects.filter(study_id=export.study_id, user_id=officer_id).exists():
        return ExportErrorCode.STUDY_TEAM_DETERMINATION, "Nobody on the study's team determines its export."
    return None


def determination_reason(covered_sha256: str) -> str:
    """The reason the ``export.determine`` event carries: the manifest's SHA-256, so the log names what was signed."""
    return f"{DETERMINED_MANIFEST_PREFIX}{covered_sha256}"


def _determine_event(
    export: DeidentifiedExport, officer_id: str, officer_roles: Collection[str], *, outcome: str, reason: str
) -> None:
    """The ``export.determine`` event: a sign-off (naming the manifest it covers) or a refusal (naming why)."""
    record(
        action="export.determine",
        actor_id=officer_id,
        actor_roles=sorted(officer_roles),
        resource_type="export",
        resource_id=str(export.id),
        outcome=outcome,
        reasons=[reason],
    )


def export_determine(
    *,
    export_id: Any,
    officer: str,
    officer_roles: Collection[str],
    statement: str,
    conditions: str,
    covered_sha256: str,
) -> ExportDetermination:
    """Record a compliance officer's determination of no actual knowledge on a ready export.

    The officer names the manifest they reviewed by its SHA-256 (as
    :func:`manifest_sha256` computes it), so the determination covers exactly
    that manifest and so the file it hashes; the ``export.determine`` event
    carries that SHA-256 in its reasons, and the download asks the chained log
    for it. Whoever asked for the export, or is on the study's team, may not
    determine it, whatever roles they hold; that refusal is an audit event of
    its own, kept although nothing else is.

    Raises:
        NotFound: no such export. Forbidden: the officer asked for the export or is on the study's team.
        Conflict: not ready, already determined, or the manifest is not the one named.
    """
    officer_id = str(uuid.UUID(officer))
    with transaction.atomic():
        export = _determinable(export_id)
        refusal = _conflict_of_interest(export, officer_id)
        if refusal is None:
            _check_determinable(export, covered_sha256)
            determination = ExportDetermination.objects.create(
                export=export,
                determined_by=officer_id,
                determined_at=timezone.now(),
                statement=statement,
                conditions=conditions,
                manifest_sha256=covered_sha256,
            )
            _determine_event(
                export, officer_id, officer_roles, outcome="allow", reason=determination_reason(covered_sha256)
            )
    annotate(resource_type="export", resource_id=str(export.id))
    if refusal is not None:
        # Outside the block above, so the refusal stays on record when the error is raised.
        _determine_event(export, officer_id, officer_roles, outcome="deny", reason=refusal[0])
        raise Forbidden(refusal[1], code=refusal[0])
    return determination


# --- the ZIP3 table -------------------------------------------------------------------------------


def zip3_table_rebuild(
    *, census_file: Path, output: Path, source: str, vintage: str, table: str, actor_id: str
) -> tuple[dict[str, int], str]:
    """Rebuild the ZIP3 table from an operator's Census ZCTA5 population file; ``(population by prefix, sha256)``.

    The file is read whole and checked before anything is written; the table
    then replaces ``output`` atomically, and the rebuild is a platform audit
    event (it changes what every community's exports keep).

    Raises:
        CensusFileError: The Census file is malformed (nothing is written).
    """
    population = census_zip3_population(census_file)
    command = f"manage.py zip3_table_build --census-file {census_file.name} --vintage {vintage} --table {table}"
    with transaction.atomic():
        digest = write_zip3_population(population, output, source=source, vintage=vintage, table=table, command=command)
        platform_record(
            action="export.zip3_table_build", actor_id=actor_id, resource_type="zip3_table", resource_id=digest
        )
    return population, digest
