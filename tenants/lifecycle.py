"""Community lifecycle: create, suspend, resume, offboard (archive, then shred), purge; a platform event each.

Each action validates everything before it touches the database and runs in
one transaction, so a refused request creates nothing: no row, no schema.
Offboarding archives the community's audit trail before it destroys anything,
and purging drops a schema only once that archive verifies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from core.errors import BadRequest, Conflict
from core.schema import use_public_schema
from security.audit.archives import ArchiveError, audit_archive_create, audit_archive_verify
from security.audit.staging import audit_append
from tenants.errors import CommunityErrorCode
from tenants.models import Community, CommunityStatus, Domain
from tenants.schemas import community_schema_create
from tenants.selectors import community_get
from tenants.validators import validate_domain, validate_name, validate_slug
from vault.keys import community_keys_create, community_keys_destroy


def _refuse_conflicts(*, slug: str, domain: str) -> None:
    if Community.objects.filter(slug=slug).exists():
        raise Conflict(f"a community with slug '{slug}' already exists", code=CommunityErrorCode.SLUG_TAKEN)
    if schema_exists(slug):
        # Never adopt a schema left behind by something else.
        raise Conflict(f"a database schema named '{slug}' already exists", code=CommunityErrorCode.SLUG_TAKEN)
    if Domain.objects.filter(domain=domain).exists():
        raise Conflict(f"domain '{domain}' is already taken", code=CommunityErrorCode.DOMAIN_TAKEN)


def _platform_event(
    action: str,
    slug: str,
    actor_id: str,
    *,
    outcome: str = "allow",
    reasons: tuple[str, ...] = (),
    resource_type: str = "community",
) -> None:
    """Record a community's lifecycle step in the platform's own audit log (the public schema).

    One event per step, written in the step's transaction; ``actor_id`` is who
    took it (``operator:<name>`` from a shell command).
    """
    audit_append(
        action=action,
        resource_type=resource_type,
        resource_id=slug,
        outcome=outcome,
        actor_id=actor_id,
        reasons=reasons,
    )


def community_create_check(*, slug: str, name: str, domain: str) -> tuple[str, str, str]:
    """The slug, name and domain as :func:`community_create` would take them, or its refusal.

    Raises:
        BadRequest: the slug, name or domain is invalid.
        Conflict: the slug, schema or domain is taken.
    """
    slug, name, domain = validate_slug(slug), validate_name(name), validate_domain(domain)
    use_public_schema()
    _refuse_conflicts(slug=slug, domain=domain)
    return slug, name, domain


def community_create(*, slug: str, name: str, domain: str, actor_id: str) -> Community:
    """Create a community, its schema (migrated, :func:`tenants.schemas.community_schema_create`) and primary domain.

    Raises:
        BadRequest: the slug, name or domain is invalid.
        Conflict: the slug, schema or domain is taken.
    """
    slug, name, domain = community_create_check(slug=slug, name=name, domain=domain)
    try:
        with transaction.atomic():
            community = Community(slug=slug, schema_name=slug, name=name, status_changed_at=timezone.now())
            # The schema is made from the migrations' recorded statements, not by running them (tenants/schemas.py).
            community.auto_create_schema = False
            community.save(verbosity=0)
            community_schema_create(community)
            Domain.objects.create(domain=domain, tenant=community, is_primary=True)
            with schema_context(slug):
                community_keys_create(slug)
            _platform_event("community.create", slug, actor_id)
    except IntegrityError as error:
        # A concurrent creation won the race between our checks and the insert.
        raise Conflict(
            f"community '{slug}' or domain '{domain}' was taken concurrently", code=CommunityErrorCode.SLUG_TAKEN
        ) from error
    finally:
        use_public_schema()
    return community


def _community_set_status(*, slug: str, status: CommunityStatus, allowed_from: set[str], actor_id: str) -> Community:
    with transaction.atomic():
        community = community_get(slug=slug, for_update=True)
        if community.status == status:
            return community
        if community.status not in allowed_from:
            raise Conflict(
                f"community '{slug}' is {community.status} and cannot become {status}",
                code=CommunityErrorCode.INVALID_TRANSITION,
            )
        community.status = status
        community.status_changed_at = timezone.now()
        community.save(update_fields=["status", "status_changed_at", "updated_at"])
        _platform_event(f"community.{status}", slug, actor_id)
    return community


def community_offboard(*, slug: str, confirm: str, actor_id: str) -> Community:
    """Archive a community's audit trail, then crypto-shred it: destroy its keys, stop serving it.

    The archive (:func:`security.audit.archives.audit_archive_create`: the
    audit log, its checkpoints, the accounting of disclosures, signed and
    sealed under the key provider's archive key) is made first, while
    everything it reads is there; if it cannot be made, nothing changes. Then
    every ciphertext of the community becomes unreadable the moment the
    provider forgets the key, whatever copies of the data exist. The schema
    goes after the grace period (:func:`communities_purge_offboarded`).

    Raises:
        BadRequest: ``confirm`` is not the slug.
        Conflict: already offboarded, or the audit trail could not be archived.
    """
    if confirm != slug:
        raise BadRequest(
            "type the community's slug after --confirm to offboard it", code=CommunityErrorCode.NOT_CONFIRMED
        )
    if community_get(slug=slug).status == CommunityStatus.OFFBOARDED:
        raise Conflict(f"community '{slug}' is already offboarded", code=CommunityErrorCode.INVALID_TRANSITION)
    try:
        archive = audit_archive_create(community=slug)
    except ArchiveError as error:
        raise Conflict(
            f"community '{slug}' was not offboarded: {error}", code=CommunityErrorCode.ARCHIVE_FAILED
        ) from error
    finally:
        use_public_schema()
    with transaction.atomic():
        community = community_get(slug=slug, for_update=True)
        if community.status == CommunityStatus.OFFBOARDED:
            raise Conflict(f"community '{slug}' is already offboarded", code=CommunityErrorCode.INVALID_TRANSITION)
        community.status = CommunityStatus.OFFBOARDED
        community.status_changed_at = timezone.now()
        community.save(update_fields=["status", "status_changed_at", "updated_at"])
        Domain.objects.filter(tenant=community).delete()
        # One event for the step, naming the archive it rests on (found again by its key).
        _platform_event("community.offboard", slug, actor_id, reasons=(f"archive:{archive.key}",))
    # Committed first: whatever happens next, the community is no longer served. Destroying is
    # idempotent in both providers, so a failed destruction can be finished by calling
    # vault.keys.community_keys_destroy again (no command does that yet).
    with schema_context(slug):
        community_keys_destroy(slug)
    return community


@dataclass(frozen=True)
class Purged:
    """What a purge did: the communities dropped, and those kept with the reason (a missing or bad archive)."""

    dropped: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def communities_purge_offboarded(*, actor_id: str, now: datetime | None = None) -> Purged:
    """Drop the schemas (and rows) of communities offboarded longer ago than the grace period.

    A schema is dropped only if the community's stored archive opens and
    verifies now, against the schema itself (nothing in its log left out);
    otherwise it stays, and the refusal is recorded in the platform's log.
    """
    cutoff = (now or timezone.now()) - timedelta(days=settings.OFFBOARD_GRACE_DAYS)
    purged = Purged()
    for community in Community.objects.filter(status=CommunityStatus.OFFBOARDED, status_changed_at__lte=cutoff):
        try:
            problem = audit_archive_verify(community=community.slug)
        finally:
            use_public_schema()
        if problem:
            purged.refused[community.slug] = problem
            _platform_event(
                "community.purge", community.slug, actor_id, outcome="deny", reasons=("archive_unverified",)
            )
            continue
        with transaction.atomic():
            community._drop_schema(force_drop=True)
            community.delete()
            _platform_event("community.purge", community.slug, actor_id)
        purged.dropped.append(community.slug)
    return purged


def community_suspend(*, slug: str, actor_id: str) -> Community:
    """Suspend an active community: every API request to it is refused until resumed."""
    return _community_set_status(
        slug=slug, status=CommunityStatus.SUSPENDED, allowed_from={CommunityStatus.ACTIVE}, actor_id=actor_id
    )


def community_resume(*, slug: str, actor_id: str) -> Community:
    """Resume a suspended community."""
    return _community_set_status(
        slug=slug, status=CommunityStatus.ACTIVE, allowed_from={CommunityStatus.SUSPENDED}, actor_id=actor_id
    )
