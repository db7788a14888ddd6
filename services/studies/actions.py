"""Writes of studies: create and update, each one transaction with the team's membership checked.

A study becomes active only with its IRB approval (number and date); a closed
study stays closed; the team are members of the community.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models.functions import Now
from rest_framework import serializers

from core.errors import Conflict
from security.audit.staging import record
from security.selectors import active_member
from services.errors import RecordErrorCode
from services.studies.errors import StudyErrorCode
from services.studies.models import Study, StudyStatus, StudyTeamMember
from tenants.models import Community


def _check_team(community: Community, team: Sequence[uuid.UUID]) -> None:
    strangers = [str(user) for user in team if active_member(user_id=user, community=community) is None]
    if strangers:
        detail = "Not a member of this community: {}"
        raise serializers.ValidationError({
            "team": [serializers.ErrorDetail(detail.format(user), code=RecordErrorCode.NOT_IN_COMMUNITY)
                     for user in strangers]
        })  # fmt: skip


def _check_status(study: Study, changes: Mapping[str, Any]) -> None:
    if study.status == StudyStatus.CLOSED and changes.get("status", StudyStatus.CLOSED) != StudyStatus.CLOSED:
        raise Conflict("A closed study cannot be reopened.", code=StudyErrorCode.STUDY_CLOSED)
    target = changes.get("status", study.status)
    approval = changes.get("irb_approval_number", study.irb_approval_number)
    approved_on = changes.get("irb_approval_date", study.irb_approval_date)
    if target == StudyStatus.ACTIVE and not (approval and approved_on):
        detail = "A study becomes active only with irb_approval_number and irb_approval_date."
        raise serializers.ValidationError(
            {"status": [serializers.ErrorDetail(detail, code=RecordErrorCode.APPROVAL_REQUIRED)]}
        )


def _team_set(study: Study, team: Sequence[uuid.UUID]) -> None:
    study.team.exclude(user_id__in=team).delete()
    for user in team:
        StudyTeamMember.objects.get_or_create(study=study, user_id=user)


WAIVER_FIELDS = ("irb_waiver_number", "irb_waiver_date")


def _waiver_changed(study: Study, values: Mapping[str, Any]) -> bool:
    if study._state.adding:
        return bool(values.get("irb_waiver_number"))
    return any(name in values and values[name] != getattr(study, name) for name in WAIVER_FIELDS)


def _waiver_recorded(study: Study, *, actor_id: str) -> None:
    """The waiver just set or changed is on record from now (the database's time); event ``study.waiver_record``."""
    study.irb_waiver_recorded_at = Now() if study.irb_waiver_number else None  # an expression: the database's clock
    study.save(update_fields=["irb_waiver_recorded_at"])
    study.refresh_from_db(fields=["irb_waiver_recorded_at"])
    record(
        action="study.waiver_record",
        actor_id=actor_id,
        resource_type="study",
        resource_id=str(study.pk),
        reasons=[f"waiver:{study.irb_waiver_number}" if study.irb_waiver_number else "waiver:removed"],
    )


@transaction.atomic
def _study_save(study: Study, *, community: Community, changes: Mapping[str, Any], actor_id: str) -> Study:
    values = dict(changes)
    team = values.pop("team", None)
    _check_status(study, values)
    if team is not None:
        _check_team(community, team)
    waiver_changed = _waiver_changed(study, values)
    for name, value in values.items():
        setattr(study, name, value)
    try:
        with transaction.atomic():
            study.save()
    except IntegrityError:
        raise Conflict(
            "Another study of this community has that protocol number.", code=StudyErrorCode.DUPLICATE
        ) from None
    if waiver_changed:
        _waiver_recorded(study, actor_id=actor_id)
    if team is not None:
        _team_set(study, team)
    return study


def study_create(
    *,
    community: Community,
    title: str,
    protocol_number: str,
    irb_approval_number: str = "",
    irb_approval_date: datetime.date | None = None,
    irb_waiver_number: str = "",
    irb_waiver_date: datetime.date | None = None,
    status: str = StudyStatus.DRAFT,
    team: Sequence[uuid.UUID] | None = None,
    actor_id: str = "system",
    **research_contacts: str,
) -> Study:
    """Create a study (a draft unless stated; active needs the IRB approval) with its team.

    ``research_contacts`` are the fields an accounting's summary of research under the
    waiver states (45 CFR 164.528(b)(4)): ``research_purpose``, ``phi_types``,
    ``sponsor_name``/``_address``/``_phone`` and ``researcher_name``/``_address``/``_phone``.

    Raises:
        ValidationError: active without approval, or a team member who is not a member of ``community``.
        Conflict: the protocol number is taken.
    """
    changes: dict[str, Any] = {
        "title": title,
        "protocol_number": protocol_number,
        "irb_approval_number": irb_approval_number,
        "irb_approval_date": irb_approval_date,
        "irb_waiver_number": irb_waiver_number,
        "irb_waiver_date": irb_waiver_date,
        "status": status,
        **research_contacts,
    }
    if team is not None:
        changes["team"] = team
    return _study_save(Study(), community=community, changes=changes, actor_id=actor_id)


def study_update(*, study: Study, community: Community, changes: Mapping[str, Any], actor_id: str = "system") -> Study:
    """Change the fields in ``changes`` (``team`` replaces the whole team).

    A waiver number or date set or changed is on record from now, as in :func:`study_create`.

    Raises:
        Conflict: the study is closed, or the protocol number is taken.
        ValidationError: active without approval, or a team member who is not a member of ``community``.
    """
    return _study_save(study, community=community, changes=changes, actor_id=actor_id)
