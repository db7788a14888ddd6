"""Break-glass alarms: an overdue review, or compliance officers never told, is shown, logged, mailed and probed.

Nobody to notify is an alarm, never "notified"; a notice whose retries ran out
is an alarm; each alarm is raised once (its audit event) and mailed once, to
the community's owners and compliance officers, with ids and times only.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.mail import EmailMessage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_tenants.utils import schema_context

from security.breakglass import tasks
from security.breakglass.models import BreakGlassAlarm, BreakGlassGrant
from security.breakglass.tasks import alarm_sweep, notify_compliance_officers
from security.models import User
from services.participants.models import Participant
from tenants.models import Community, CommunityStatus
from tests.factories import ParticipantFactory
from tests.support.audit import chained_events
from tests.support.breakglass import BREAK_GLASS, REASON, grant_in, review_route
from tests.support.clients import MemberClient


def overdue_grant_in(schema: str, user: User, scope_id: str, **fields: Any) -> BreakGlassGrant:
    """A grant that ended an hour more than the review period ago, never reviewed (told at once)."""
    now = timezone.now()
    ended = now - timedelta(hours=settings.BREAK_GLASS_REVIEW_DUE_HOURS + 1)
    grant = grant_in(schema, user, scope_id, expires_at=ended, **{"notified_at": ended, **fields})
    with schema_context(schema):
        BreakGlassGrant.objects.filter(pk=grant.pk).update(created_at=ended - timedelta(minutes=30))
        return BreakGlassGrant.objects.get(pk=grant.pk)


def untold_grant_in(schema: str, user: User, scope_id: str) -> BreakGlassGrant:
    """An open grant whose notice is still owed a minute after it was due."""
    grant = grant_in(schema, user, scope_id)
    opened = timezone.now() - timedelta(minutes=settings.BREAK_GLASS_NOTIFY_DUE_MINUTES + 1)
    with schema_context(schema):
        BreakGlassGrant.objects.filter(pk=grant.pk).update(created_at=opened)
        return BreakGlassGrant.objects.get(pk=grant.pk)


def alarms_of(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200, response.content
    return {entry["id"]: entry["alarms"] for entry in response.json()}


def participant_in(community: Community) -> str:
    return str(ParticipantFactory.create(community=community).pk)


# --- the states that are alarms -----------------------------------------------------------


def test_an_overdue_grant_is_alarmed_on_alphas_host_and_never_on_betas(
    alpha: Community, member: Callable[..., User], signed_in: MemberClient, participant: Participant
) -> None:
    overdue = overdue_grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
    officer, _ = signed_in("compliance_officer")
    theirs, _ = signed_in("compliance_officer", on_beta=True)

    assert alarms_of(officer.get(BREAK_GLASS, {"alarm": "true"})) == {str(overdue.pk): ["review_overdue"]}
    assert alarms_of(officer.get(BREAK_GLASS, {"alarm": "false"})) == {}
    assert alarms_of(theirs.get(BREAK_GLASS, {"alarm": "true"})) == {}
    assert str(overdue.pk) not in theirs.get(BREAK_GLASS).content.decode()


def test_a_grant_is_overdue_only_once_the_review_period_has_passed(
    alpha: Community, member: Callable[..., User], signed_in: MemberClient, participant: Participant
) -> None:
    holder = member(alpha, "coordinator")
    due_soon = grant_in(
        "alpha",
        holder,
        str(participant.pk),
        expires_at=timezone.now() - timedelta(hours=settings.BREAK_GLASS_REVIEW_DUE_HOURS - 1),
        notified_at=timezone.now(),
    )
    officer, _ = signed_in("compliance_officer")

    assert alarms_of(officer.get(BREAK_GLASS)) == {str(due_soon.pk): []}
    assert alarms_of(officer.get(BREAK_GLASS, {"alarm": "true"})) == {}


def test_reviewing_an_overdue_grant_ends_its_alarm(
    alpha: Community, member: Callable[..., User], signed_in: MemberClient, participant: Participant
) -> None:
    overdue = overdue_grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
    officer, _ = signed_in("compliance_officer")

    assert officer.post(review_route(overdue), {"comment": "Justified, late"}, format="json").status_code == 200

    assert alarms_of(officer.get(BREAK_GLASS, {"alarm": "true"})) == {}


def test_with_no_compliance_officer_the_grant_is_an_alarm_not_notified(
    alpha: Community, member: Callable[..., User], participant: Participant, mailoutbox: list[EmailMessage]
) -> None:
    owner = member(alpha, "owner")
    grant = untold_grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
    assert notify_compliance_officers("alpha", str(grant.pk)) == 0  # nobody to tell

    assert alarm_sweep() == 1

    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=grant.pk).notified_at is None
        assert list(BreakGlassAlarm.objects.values_list("code", flat=True)) == ["no_one_to_notify"]
    [mail] = mailoutbox
    assert mail.to == [owner.email]
    assert f"grant {grant.pk}: no_one_to_notify" in mail.body


def test_a_notice_whose_retries_ran_out_is_an_alarm(
    alpha: Community,
    member: Callable[..., User],
    signed_in: MemberClient,
    participant: Participant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    officer, _ = signed_in("compliance_officer")
    grant = untold_grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))

    def smtp_down(**_: Any) -> int:
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    monkeypatch.setattr("security.breakglass.tasks.send_mail", smtp_down)
    result = notify_compliance_officers.apply(args=("alpha", str(grant.pk)))  # retries run in line, then give up

    assert result.failed()
    assert alarms_of(officer.get(BREAK_GLASS, {"alarm": "true"})) == {str(grant.pk): ["not_notified"]}


def test_a_notice_owed_for_less_than_the_due_time_is_no_alarm_yet(
    alpha: Community, member: Callable[..., User], signed_in: MemberClient, participant: Participant
) -> None:
    officer, _ = signed_in("compliance_officer")
    grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))

    assert alarms_of(officer.get(BREAK_GLASS, {"alarm": "true"})) == {}


def test_the_alarm_filter_accepts_only_true_or_false(signed_in: MemberClient) -> None:
    officer, _ = signed_in("compliance_officer")

    response = officer.get(BREAK_GLASS, {"alarm": "1; DROP TABLE"})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_filter"


@pytest.mark.parametrize("role", ["owner", "auditor", "coordinator"])
def test_only_compliance_officers_read_the_alarmed_queue(
    role: str, alpha: Community, member: Callable[..., User], signed_in: MemberClient, participant: Participant
) -> None:
    overdue_grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
    client, _ = signed_in(role)

    response = client.get(BREAK_GLASS, {"alarm": "true"})

    assert response.status_code == 403
    assert REASON not in response.content.decode()


# --- the sweep: raised once with its audit event, logged every time, mailed once ----------------


def test_the_sweep_raises_each_alarm_once_with_an_audit_event_and_mails_it_once(
    alpha: Community,
    member: Callable[..., User],
    participant: Participant,
    mailoutbox: list[EmailMessage],
    caplog: pytest.LogCaptureFixture,
) -> None:
    officer, owner = member(alpha, "compliance_officer"), member(alpha, "owner")
    member(alpha, "auditor")
    overdue = overdue_grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))

    with caplog.at_level(logging.ERROR, logger="security.breakglass.tasks"):
        assert alarm_sweep() == 1
        assert alarm_sweep() == 1  # still standing: logged again, not raised or mailed again

    lines = [record.getMessage() for record in caplog.records]
    assert lines == [f"break-glass alarm: community=alpha grant={overdue.pk} alarms=review_overdue"] * 2
    [mail] = mailoutbox
    assert sorted(mail.to) == sorted([officer.email, owner.email])
    with schema_context("alpha"):
        [alarm] = BreakGlassAlarm.objects.all()
        [event] = chained_events().filter(action="break_glass.alarm")
    assert (alarm.code, alarm.mailed_at is not None) == ("review_overdue", True)
    assert (event.resource_id, event.reasons, event.actor_id) == (
        str(overdue.pk),
        ["review_overdue"],
        "system:break-glass-alarms",
    )


def test_the_alarm_log_line_and_mail_carry_no_reason_or_phi(
    alpha: Community,
    member: Callable[..., User],
    participant: Participant,
    mailoutbox: list[EmailMessage],
    caplog: pytest.LogCaptureFixture,
) -> None:
    member(alpha, "owner")
    holder = member(alpha, "coordinator")
    overdue_grant_in("alpha", holder, str(participant.pk))

    with caplog.at_level(logging.DEBUG):
        alarm_sweep()

    [mail] = mailoutbox
    told = caplog.text + mail.subject + mail.body
    for secret in (REASON, "allergy", participant.pseudonym, str(participant.pk), holder.email, participant.mrn):
        assert secret not in told


def test_a_grant_of_beta_is_never_in_alphas_digest(
    alpha: Community, beta: Community, member: Callable[..., User], mailoutbox: list[EmailMessage]
) -> None:
    ours_officer, theirs_officer = member(alpha, "compliance_officer"), member(beta, "compliance_officer")
    ours = overdue_grant_in("alpha", member(alpha, "coordinator"), participant_in(alpha))
    theirs = overdue_grant_in("beta", member(beta, "coordinator"), participant_in(beta))

    assert alarm_sweep() == 2

    mails = {tuple(mail.to): mail.body for mail in mailoutbox}
    assert set(mails) == {(ours_officer.email,), (theirs_officer.email,)}
    assert str(ours.pk) in mails[(ours_officer.email,)]
    assert str(theirs.pk) not in mails[(ours_officer.email,)]
    assert str(ours.pk) not in mails[(theirs_officer.email,)]
    with schema_context("beta"):
        assert [event.resource_id for event in chained_events().filter(action="break_glass.alarm")] == [str(theirs.pk)]


def test_a_digest_the_mail_server_refused_is_mailed_on_the_next_sweep(
    alpha: Community,
    member: Callable[..., User],
    participant: Participant,
    monkeypatch: pytest.MonkeyPatch,
    mailoutbox: list[EmailMessage],
) -> None:
    member(alpha, "compliance_officer")
    overdue_grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))

    def smtp_down(**_: Any) -> int:
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    with monkeypatch.context() as patched:
        patched.setattr("security.breakglass.tasks.send_mail", smtp_down)
        assert alarm_sweep() == 1
    with schema_context("alpha"):
        assert BreakGlassAlarm.objects.get().mailed_at is None

    alarm_sweep()

    assert len(mailoutbox) == 1
    with schema_context("alpha"):
        assert BreakGlassAlarm.objects.get().mailed_at is not None


def test_a_suspended_community_is_swept_all_the_same(
    beta: Community, member: Callable[..., User], mailoutbox: list[EmailMessage]
) -> None:
    member(beta, "compliance_officer")
    overdue_grant_in("beta", member(beta, "coordinator"), participant_in(beta))
    Community.objects.filter(slug="beta").update(status=CommunityStatus.SUSPENDED)

    assert alarm_sweep() == 1
    assert len(mailoutbox) == 1


def test_a_community_whose_sweep_fails_does_not_silence_the_others(
    alpha: Community,
    beta: Community,
    member: Callable[..., User],
    participant: Participant,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    overdue_grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
    overdue_grant_in("beta", member(beta, "coordinator"), participant_in(beta))
    real = tasks.community_alarms

    def failing_for_alpha(community: Community, *, now: datetime) -> int:
        if community.slug == "alpha":
            raise RuntimeError("schema in trouble")
        return real(community, now=now)

    monkeypatch.setattr(tasks, "community_alarms", failing_for_alpha)

    assert alarm_sweep() == 1  # beta's, whichever was swept first
    assert "break-glass alarm sweep failed: community=alpha" in caplog.text


# --- the command, for cron and monitoring -----------------------------------------------------


def test_the_command_prints_each_alarm_and_exits_1(
    alpha: Community, beta: Community, member: Callable[..., User], participant: Participant
) -> None:
    overdue = overdue_grant_in("alpha", member(alpha, "coordinator"), str(participant.pk))
    untold = untold_grant_in("beta", member(beta, "coordinator"), participant_in(beta))
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("breakglass_alarms", stdout=out)

    assert raised.value.returncode == 1
    text = out.getvalue()
    assert f"community=alpha grant={overdue.pk} alarm=review_overdue" in text
    assert f"community=beta grant={untold.pk} alarm=no_one_to_notify" in text
    assert REASON not in text
    with schema_context("alpha"):
        assert not BreakGlassAlarm.objects.exists()  # it reads, it raises nothing


def test_the_command_for_one_community_shows_only_its_alarms(
    alpha: Community, beta: Community, member: Callable[..., User]
) -> None:
    overdue_grant_in("beta", member(beta, "coordinator"), participant_in(beta))
    out = StringIO()

    call_command("breakglass_alarms", "--community", "alpha", stdout=out)

    assert out.getvalue().strip() == "no break-glass alarm"
    with pytest.raises(CommandError):
        call_command("breakglass_alarms", "--community", "beta", stdout=StringIO())


def test_the_command_refuses_an_unknown_community(alpha: Community) -> None:
    with pytest.raises(CommandError, match="no community"):
        call_command("breakglass_alarms", "--community", "gamma", stdout=StringIO())
