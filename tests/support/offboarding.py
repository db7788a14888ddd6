"""A community with an audit trail worth keeping (events, checkpoints, disclosures), and the auditor's tools."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from security.audit.checkpoints import checkpoint_create, public_keys_pem
from security.audit.models import AuditEvent
from security.models import User
from services.participants.models import Participant
from tenants.lifecycle import community_create
from tenants.models import Community
from tests.factories import MembershipFactory, ParticipantFactory, UserFactory
from tests.support.audit import recorded

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Trail:
    """A community's audit trail: who saw whose record, as which events."""

    community: Community
    participant: Participant
    recipient: User
    disclosed: list[AuditEvent]
    events: int


def community_with_a_trail(slug: str) -> Trail:
    """A new community whose log holds a denial, two disclosures of one participant's PHI and a checkpoint."""
    community = community_create(slug=slug, name=slug.title(), domain=f"{slug}.localhost", actor_id="operator:test")
    participant = ParticipantFactory.create(community=community)
    recipient = UserFactory.create()
    MembershipFactory.create(user=recipient, community=community, role="principal_investigator")
    with schema_context(slug):

        def access(outcome: str) -> AuditEvent:
            return recorded(
                actor_id=str(recipient.pk),
                actor_roles=["principal_investigator"],
                action="participant.read",
                resource_type="participant",
                resource_id=str(participant.pk),
                participant_pseudonyms=[participant.pseudonym],
                purpose="research_use",
                outcome=outcome,
                decision_id=uuid.uuid4().hex,
            )

        denied = access("deny")
        disclosed = [access("allow")]
        checkpoint_create()
        disclosed.append(access("allow"))
        checkpoint_create()
        events = AuditEvent.objects.count()
    with connection.cursor() as cursor:
        # The test's transaction never commits: fire the deferred checks now, or DROP SCHEMA refuses to run.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert denied.sequence == 1
    return Trail(community, participant, recipient, disclosed, events)


def auditor_keys(directory: Path, community: str) -> Path:
    """The auditor's own copy of ``community``'s audit public keys (as ``audit_keys --community --out`` writes it)."""
    path = directory / "audit-keys.pem"
    path.write_text(public_keys_pem(community), encoding="ascii")
    return path


def standalone(module: str, *arguments: Path) -> subprocess.CompletedProcess[str]:
    """``python -m <module> ARGS`` in a fresh interpreter: no settings, no database, no key provider."""
    environment = {"PATH": os.environ.get("PATH", "")}
    return subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", module, *map(str, arguments)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def stored_archive(slug: str) -> Path:
    """The one sealed archive file of ``slug`` in the local archive store."""
    (path,) = (Path(settings.AUDIT_ARCHIVE_DIR) / slug).glob("*.tar.sealed")
    return path
