"""Writes of de-identified exports: asking for one, and building it (the task calls the latter)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.utils import timezone

from core.errors import ServiceUnavailable
from core.exports import ExportStatus
from services.exports.formats import EXTENSIONS, LINES
from services.exports.models import DeidentifiedExport
from services.exports.safe_harbor import (
    DeidentifiedRecord,
    ResearchIds,
    deidentify_participant,
    identifier_handling,
    restricted_zip3,
)
from services.exports.sealing import SealedWriter, file_aad
from services.exports.selectors import excluded_participant_count, export_participants, export_storage_key
from services.exports.storage import get_storage
from services.studies.models import Study
from vault.keys import current_community, write_key

MANIFEST_TYPE = "deidentified-export/v1"
METHOD = "HIPAA Safe Harbor, 45 CFR 164.514(b)(2)"
ZIP3_SOURCE = (
    "HHS OCR, Guidance Regarding Methods for De-identification of PHI (2012): prefixes with 20,000 people "
    "or fewer in the 2000 Census"
)
RESEARCH_ID_NOTE = "drawn at random for this export (secrets); derived from no identifier (45 CFR 164.514(c))"


def deidentified_export_request(*, study: Study, export_format: str, requested_by: str) -> DeidentifiedExport:
    """Record the request (pending); the caller queues its build once the transaction commits."""
    return DeidentifiedExport.objects.create(study=study, format=export_format, requested_by=requested_by)


@dataclass
class _Tally:
    participants: int = 0
    observations: int = 0
    dropped: int = 0


@dataclass(frozen=True)
class _Written:
    size: int
    sha256: str
    key_version: int


def _records(study: Study, *, as_of: date, tally: _Tally) -> Iterator[DeidentifiedRecord]:
    research_ids = ResearchIds()
    for participant in export_participants(study):
        record = deidentify_participant(participant, research_id=research_ids.issue(), as_of=as_of)
        tally.participants += 1
        tally.observations += len(record["observations"])
        tally.dropped += len(participant.get("observations", ())) - len(record["observations"])
        yield record


def _write(export: DeidentifiedExport, community: str, *, as_of: date, tally: _Tally) -> _Written:
    """Stream the records through the chosen format and the sealer into storage; hash the plaintext on the way."""
    version, cipher = write_key(community)
    digest, size = hashlib.sha256(), 0
    lines = LINES[export.format](_records(export.study, as_of=as_of, tally=tally))
    with get_storage().writer(export_storage_key(export, community)) as sink:
        sealer = SealedWriter(
            sink,
            cipher=cipher,
            key_version=version,
            aad=file_aad(community=community, export_id=str(export.id), key_version=version),
            chunk_bytes=settings.DEIDENTIFIED_EXPORT_CHUNK_BYTES,
        )
        for line in lines:
            data = line.encode("utf-8")
            digest.update(data)
            size += len(data)
            sealer.write(data)
        sealer.close()
    return _Written(size=size, sha256=digest.hexdigest(), key_version=version)


def _manifest(
    export: DeidentifiedExport, community: str, *, as_of: date, tally: _Tally, written: _Written
) -> dict[str, Any]:
    return {
        "type": MANIFEST_TYPE,
        "export_id": str(export.id),
        "community": community,
        "study": str(export.study_id),
        "format": export.format,
        "file_name": export.file_name,
        "method": METHOD,
        "generated_at": timezone.now().isoformat(),
        "ages_as_of": as_of.isoformat(),
        "participants": tally.participants,
        "participants_excluded_without_research_consent": excluded_participant_count(export.study),
        "observations": tally.observations,
        "observations_dropped_uncoded": tally.dropped,
        "identifiers": identifier_handling(),
        "restricted_zip3": sorted(restricted_zip3()),
        "restricted_zip3_source": ZIP3_SOURCE,
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


def deidentified_export_build(export: DeidentifiedExport) -> DeidentifiedExport:
    """Build ``export`` in the current community; record success or a PHI-free failure.

    A dependency that is down (the key service, say) leaves the export
    pending and is raised for the task to retry; anything else marks it
    failed with the error's class name, which carries no data.
    """
    community = current_community()
    as_of = timezone.now().date()
    tally = _Tally()
    export.file_name = f"deidentified-export-{export.id}.{EXTENSIONS[export.format]}"
    try:
        written = _write(export, community, as_of=as_of, tally=tally)
    except ServiceUnavailable:
        raise
    except Exception as error:
        export.status, export.error, export.finished_at = ExportStatus.FAILED, type(error).__name__, timezone.now()
        export.save(update_fields=["status", "error", "finished_at"])
        raise
    export.manifest = _manifest(export, community, as_of=as_of, tally=tally, written=written)
    export.status, export.finished_at = ExportStatus.READY, timezone.now()
    export.participant_count, export.observation_count = tally.participants, tally.observations
    export.save(
        update_fields=[
            "status",
            "finished_at",
            "file_name",
            "manifest",
            "participant_count",
            "observation_count",
        ]
    )
    return export
