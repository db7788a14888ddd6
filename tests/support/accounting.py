"""Accesses written straight into alpha's chain at stated times, for the accounting's tests."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any

from django_tenants.utils import schema_context

from security.audit.models import AuditEvent
from security.models import User
from services.participants.models import Participant
from tests.support.audit import recorded


def read(participant: Participant, reader: User, when: datetime.datetime, **fields: Any) -> AuditEvent:
    """Record, in alpha's chain, ``reader``'s read of ``participant``'s record at ``when`` (``fields`` override)."""
    with schema_context("alpha"):
        return recorded(
            **{
                "occurred_at": when,
                "actor_id": str(reader.pk),
                "actor_roles": ["principal_investigator"],
                "action": "participant.read",
                "resource_type": "participant",
                "resource_id": str(participant.pk),
                "participant_pseudonyms": [participant.pseudonym],
                "purpose": "research_use",
                "outcome": "allow",
                "decision_id": uuid.uuid4().hex,
                **fields,
            }
        )


def listed(everyone: Sequence[Participant], reader: User, when: datetime.datetime, **fields: Any) -> AuditEvent:
    """Record, in alpha's chain, a list read by ``reader`` at ``when`` naming all of ``everyone``."""
    return read(
        everyone[0],
        reader,
        when,
        **{
            "action": "participant.list",
            "resource_id": "",
            "participant_pseudonyms": [person.pseudonym for person in everyone],
            **fields,
        },
    )
