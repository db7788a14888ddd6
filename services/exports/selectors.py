"""Reads for de-identified exports: the exports themselves, the study's dataset, a ready file's plaintext.

Every read runs in the request's (or task's) community schema, so an id from
another community is simply not there: a miss, the same 404 as a random id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

from django.db.models import Prefetch, QuerySet

from core.errors import ApplicationError, Conflict, NotFound
from core.exports import ExportStatus
from security.audit.selectors import audit_events
from services.consents.models import Scope
from services.exports.errors import ExportErrorCode
from services.exports.formats import EXTENSIONS
from services.exports.models import DeidentifiedExport, ExportDetermination
from services.exports.safe_harbor import ObservationInput, ParticipantInput
from services.exports.sealing import file_aad
from services.exports.storage import ExportFileMissing, get_storage, storage_key
from services.observations.models import Observation
from services.participants.models import Participant
from services.studies.models import Study
from vault.errors import CiphertextIntegrityError, KeyDestroyed
from vault.keys import current_community, read_key
from vault.sealing import ByteSource, open_chunks, read_key_version

logger = logging.getLogger(__name__)

BATCH = 500
HISTORY_LIMIT = 50  # the study's earlier exports an officer is shown, newest first
DETERMINED_MANIFEST_PREFIX = "manifest_sha256:"  # the export.determine event's reason: the manifest signed
# Only participants whose consent covers research use (and is not withdrawn) are exported.
EXPORT_CONSENT_SCOPE = Scope.RESEARCH_USE
PARTICIPANT_FIELDS = ("id", "date_of_birth", "sex", "state", "postal_code")
OBSERVATION_FIELDS = ("id", "participant_id", "code_system", "code", "value_number", "unit", "effective_date")


class ExportGone(ApplicationError):
    """The export's file can no longer be opened: its data key was retired or destroyed (410)."""

    status = 410
    title = "Gone"


def deidentified_exports(*, determined: bool | None = None) -> QuerySet[DeidentifiedExport]:
    """The community's exports, newest first, with their determinations.

    ``determined=False``: only ready exports still awaiting a compliance officer's determination.
    """
    exports = DeidentifiedExport.objects.select_related("determination")
    if determined is None:
        return exports
    if determined:
        return exports.filter(determination__isnull=False)
    return exports.filter(status=ExportStatus.READY, determination__isnull=True)


def access_export(export_id: Any) -> DeidentifiedExport:
    """The export with this id in this community (404 otherwise)."""
    export = deidentified_exports().filter(pk=export_id).first()
    if export is None:
        raise NotFound("No such export.", code=ExportErrorCode.NOT_FOUND)
    return export


def access_ready_export(export_id: Any) -> DeidentifiedExport:
    """The export, which must be ready (409 while pending or after a failure)."""
    export = access_export(export_id)
    if export.status != ExportStatus.READY:
        raise Conflict(f"The export is {export.status}.", code=ExportErrorCode.NOT_READY)
    return export


def determination_of(export: DeidentifiedExport) -> ExportDetermination | None:
    """The export's determination, if a compliance officer has made it."""
    try:
        return export.determination
    except ExportDetermination.DoesNotExist:
        return None


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """The SHA-256 of a manifest's canonical JSON (sorted keys, no spaces): what a determination covers."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def access_downloadable_export(export_id: Any) -> DeidentifiedExport:
    """The export, which must be ready and determined, for the manifest it has now.

    Raises:
        Conflict: ``determination_required`` until an officer signs off; ``manifest_mismatch`` when the
            manifest is no longer the one the determination covers (edited in the database since);
            ``determination_not_recorded`` when the audit log has no sign-off event for it (a row
            inserted in the database).
    """
    export = access_ready_export(export_id)
    determination = determination_of(export)
    if determination is None:
        raise Conflict(
            "A compliance officer has not yet made the export's determination.",
            code=ExportErrorCode.DETERMINATION_REQUIRED,
        )
    if manifest_sha256(export.manifest or {}) != determination.manifest_sha256:
        logger.error("export %s: its manifest differs from the one its determination covers", export.id)
        raise Conflict(
            "The export's manifest is not the one its determination covers.", code=ExportErrorCode.MANIFEST_MISMATCH
        )
    if not determination_recorded(export, determination.manifest_sha256):
        logger.error("export %s: its determination has no export.determine event in the audit log", export.id)
        raise Conflict(
            "The export's determination is not on the audit log.", code=ExportErrorCode.DETERMINATION_NOT_RECORDED
        )
    return export


def determination_recorded(export: DeidentifiedExport, covered_sha256: str) -> bool:
    """Whether the community's chained log holds the ``export.determine`` event that signed this manifest.

    A determination row alone is what anyone with database access could
    insert; the event, chained and witnessed with the rest of the log, is
    what an officer's sign-off writes in the same transaction.
    """
    return (
        audit_events(action="export.determine", resource_type="export", resource_id=str(export.id), outcome="allow")
        .filter(reasons__contains=[f"{DETERMINED_MANIFEST_PREFIX}{covered_sha256}"])
        .exists()
    )


def study_export_history(export: DeidentifiedExport) -> dict[str, Any]:
    """What the officer weighs beside the manifest: the study's earlier exports, and who joined since the last.

    Two exports of one study differ by the participants who joined (or left)
    between them; a small difference, or a run of participants enrolled just
    before an export (dummy participants, whose own records the requester
    knows), is how a file that passes every rule can still single someone
    out. ``participants_enrolled_since_previous_export`` counts the
    participants exported now (active research-use consent) who were enrolled
    after the previous ready export finished and before this one did; None
    when there is no earlier ready export.
    """
    earlier = list(
        DeidentifiedExport.objects.filter(study_id=export.study_id, created_at__lt=export.created_at)
        .exclude(pk=export.pk)
        .order_by("-created_at", "id")
        .values("id", "created_at", "finished_at", "status", "participant_count", "observation_count")[:HISTORY_LIMIT]
    )
    previous = next((item for item in earlier if item["status"] == ExportStatus.READY), None)
    enrolled = None
    if previous is not None and previous["finished_at"] is not None and export.finished_at is not None:
        enrolled = (
            Participant.objects.filter(study_id=export.study_id, consent_scopes__contains=[EXPORT_CONSENT_SCOPE])
            .filter(created_at__gt=previous["finished_at"], created_at__lte=export.finished_at)
            .count()
        )
    return {
        "earlier_exports": [{**item, "id": str(item["id"])} for item in earlier],
        "previous_export": None if previous is None else str(previous["id"]),
        "participants_enrolled_since_previous_export": enrolled,
    }


def access_study(study_id: uuid.UUID) -> Study:
    """The study with this id in this community (404 otherwise, for a study of another community too)."""
    study = Study.objects.filter(pk=study_id).first()
    if study is None:
        raise NotFound("No such study.", code=ExportErrorCode.STUDY_NOT_FOUND)
    return study


def excluded_participant_count(study: Study) -> int:
    """How many of the study's participants an export leaves out (no active research-use consent)."""
    return Participant.objects.filter(study=study).exclude(consent_scopes__contains=[EXPORT_CONSENT_SCOPE]).count()


def _observation(observation: Observation) -> ObservationInput:
    return {
        "code_system": observation.code_system,
        "code": observation.code,
        "value_number": observation.value_number,
        "unit": observation.unit,
        "effective_date": observation.effective_date,
    }


def export_participants(study: Study, *, with_observations: bool = True) -> Iterator[ParticipantInput]:
    """The study's consented participants in random order, with their observations, a batch at a time.

    Only the columns Safe Harbor may keep in some form are loaded (and so
    decrypted): names, contacts, addresses, MRNs and notes are never opened.
    The order is random so that a row's position says nothing about when
    its participant enrolled. ``with_observations=False`` loads the
    participants' own columns only (the small-cell pass needs no more).
    """
    participants = (
        Participant.objects.filter(study=study)
        .filter(consent_scopes__contains=[EXPORT_CONSENT_SCOPE])
        .only(*PARTICIPANT_FIELDS)
        .order_by("?")
    )
    if with_observations:
        observations = Observation.objects.only(*OBSERVATION_FIELDS).order_by("created_at", "id")
        participants = participants.prefetch_related(Prefetch("observations", queryset=observations))
    for participant in participants.iterator(chunk_size=BATCH):
        yield {
            "date_of_birth": participant.date_of_birth,
            "sex": participant.sex,
            "state": participant.state,
            "postal_code": participant.postal_code,
            "observations": [_observation(item) for item in participant.observations.all()]
            if with_observations
            else [],
        }


def export_storage_key(export: DeidentifiedExport, community: str) -> str:
    """Where the export's sealed file is kept: the winning build's own key (the shared one of older rows)."""
    if export.storage_key:
        return export.storage_key
    return storage_key(community=community, export_id=str(export.id), extension=EXTENSIONS[export.format])


class ExportDigestMismatch(Exception):
    """The decrypted file is not the one the manifest hashes: the download is cut before its last chunk."""


def _verified(chunks: Iterator[bytes], export: DeidentifiedExport) -> Iterator[bytes]:
    """The chunks, each held back until the next one is read; the last only once the SHA-256 matches.

    So a file other than the one the manifest (and so the determination)
    names never reaches the client whole: the stream breaks before its end,
    and the client sees a short, failed transfer. Costs one SHA-256 pass and
    one chunk of memory; nothing is decrypted twice.

    Raises:
        ExportDigestMismatch: The plaintext's SHA-256 or size is not the manifest's.
    """
    manifest = export.manifest or {}
    digest, size, held = hashlib.sha256(), 0, None
    for chunk in chunks:
        if held is not None:
            yield held
        digest.update(chunk)
        size += len(chunk)
        held = chunk
    if digest.hexdigest() != manifest.get("sha256") or size != manifest.get("bytes"):
        logger.error("export %s: the file's sha256 is not the manifest's; the download was cut", export.id)
        raise ExportDigestMismatch(str(export.id))
    if held is not None:
        yield held


def _opened(source: ByteSource, export: DeidentifiedExport, **opening: Any) -> Iterator[bytes]:
    try:
        yield from _verified(open_chunks(source, **opening), export)
    except CiphertextIntegrityError:
        logger.error("the sealed file of export %s failed its integrity check; the download was cut", export.id)
        raise
    finally:
        source.close()


def export_plaintext(export: DeidentifiedExport) -> Iterator[bytes]:
    """The export's dataset, decrypted chunk by chunk as it is read; never written out in clear.

    The file and its key are opened here, before the response starts, so a
    missing file or a retired key is a clean 404 or 410 and the stream needs
    no database. The stream is checked against the manifest's SHA-256 as it
    goes (:func:`_verified`) and cut before its end on a mismatch.
    """
    community = current_community()
    try:
        source = get_storage().reader(export_storage_key(export, community))
    except ExportFileMissing as error:
        raise NotFound("The export's file is gone.", code=ExportErrorCode.FILE_MISSING) from error
    try:
        version = read_key_version(source)
        cipher = read_key(community, version)
    except KeyDestroyed as error:
        source.close()
        raise ExportGone(
            "The key that sealed this export is gone; ask for a new export.", code=ExportErrorCode.KEY_RETIRED
        ) from error
    except BaseException:
        source.close()
        raise
    aad = file_aad(community=community, export_id=str(export.id), key_version=version)
    return _opened(source, export, cipher=cipher, aad=aad)
