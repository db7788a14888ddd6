"""Break-glass notification: the community's compliance officers are mailed when a grant opens, without its reason.

Delivery is durable: a grant not yet notified is owed a notice, which the task
sends once (retrying mail failures) and the periodic sweep queues again.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone
from django_tenants.utils import schema_context
from kombu.exceptions import OperationalError

from security.breakglass.models import BreakGlassGrant
from security.breakglass.tasks import enqueue_notification, notify_compliance_officers, notify_sweep
from security.models import User
from tenants.models import Community, CommunityStatus
from tests.factories import ParticipantFactory
from tests.support.breakglass import REASON, grant_in


def test_compliance_officers_of_the_community_are_mailed_without_the_reason(
    alpha: Community, beta: Community, member: Callable[..., User], mailoutbox: list[EmailMessage]
) -> None:
    officers = [member(alpha, "compliance_officer"), member(alpha, "compliance_officer")]
    member(alpha, "compliance_officer", is_active=False)
    member(alpha, "auditor")
    member(beta, "compliance_officer")
    holder = member(alpha, "coordinator")
    participant = ParticipantFactory.create(community=alpha)
    grant = grant_in("alpha", holder, str(participant.pk))

    told = notify_compliance_officers("alpha", str(grant.pk))

    assert told == 2
    [mail] = mailoutbox
    assert sorted(mail.to) == sorted(officer.email for officer in officers)
    assert REASON not in mail.body
    assert "allergy" not in mail.body
    assert REASON not in mail.subject
    assert str(grant.pk) in mail.body
    assert str(holder.pk) in mail.body
    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=grant.pk).notified_at is not None


# --- durable delivery: the outbox, retries, the sweep ---------------------------------


def test_a_notice_already_sent_is_not_sent_again(
    alpha: Community, member: Callable[..., User], mailoutbox: list[EmailMessage]
) -> None:
    member(alpha, "compliance_officer")
    grant = grant_in("alpha", member(alpha, "coordinator"), str(ParticipantFactory.create(community=alpha).pk))

    first = notify_compliance_officers("alpha", str(grant.pk))
    second = notify_compliance_officers("alpha", str(grant.pk))

    assert (first, second) == (1, 0)
    assert len(mailoutbox) == 1


def test_a_mail_server_failure_leaves_the_notice_owed_and_is_retried_with_backoff(
    alpha: Community, member: Callable[..., User], monkeypatch: pytest.MonkeyPatch
) -> None:
    member(alpha, "compliance_officer")
    grant = grant_in("alpha", member(alpha, "coordinator"), str(ParticipantFactory.create(community=alpha).pk))

    def smtp_down(**_: Any) -> int:
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    monkeypatch.setattr("security.breakglass.tasks.send_mail", smtp_down)

    with pytest.raises(smtplib.SMTPServerDisconnected):
        notify_compliance_officers("alpha", str(grant.pk))

    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=grant.pk).notified_at is None
    retried_for = notify_compliance_officers.autoretry_for  # type: ignore[attr-defined]  # a shared_task option the stubs omit
    assert issubclass(smtplib.SMTPServerDisconnected, retried_for)
    assert notify_compliance_officers.retry_backoff is True  # type: ignore[attr-defined]  # likewise
    assert notify_compliance_officers.max_retries == 10


def test_without_a_compliance_officer_the_notice_stays_owed(
    alpha: Community, member: Callable[..., User], mailoutbox: list[EmailMessage]
) -> None:
    grant = grant_in("alpha", member(alpha, "coordinator"), str(ParticipantFactory.create(community=alpha).pk))

    assert notify_compliance_officers("alpha", str(grant.pk)) == 0

    assert mailoutbox == []
    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=grant.pk).notified_at is None


def test_a_broker_that_refuses_the_notice_is_logged_by_type_and_never_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refused(*_: Any, **__: Any) -> None:
        raise OperationalError("Connection refused: amqp://guest:s3cret@rabbit//")

    monkeypatch.setattr(notify_compliance_officers, "apply_async", refused)

    with caplog.at_level(logging.WARNING):
        assert enqueue_notification(community="alpha", grant_id="g-1") is False

    assert "OperationalError" in caplog.text
    assert "s3cret" not in caplog.text


def test_the_sweep_queues_owed_notices_older_than_the_delay_in_active_communities_only(
    alpha: Community, beta: Community, member: Callable[..., User], monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(notify_compliance_officers, "apply_async", lambda args, **_: queued.append(args))
    holder = member(alpha, "coordinator")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        owed = grant_in("alpha", holder, str(ParticipantFactory.create(community=alpha).pk))
        told = grant_in("alpha", holder, str(ParticipantFactory.create(community=alpha).pk), notified_at=start)
        theirs = grant_in("beta", member(beta, "coordinator"), str(ParticipantFactory.create(community=beta).pk))
    with time_machine.travel(start + timedelta(seconds=settings.BREAK_GLASS_NOTIFY_DELAY_SECONDS - 1), tick=False):
        young = grant_in("alpha", holder, str(ParticipantFactory.create(community=alpha).pk))
        assert notify_sweep() == 0  # nothing is older than the delay yet

    with time_machine.travel(start + timedelta(seconds=settings.BREAK_GLASS_NOTIFY_DELAY_SECONDS + 1), tick=False):
        Community.objects.filter(slug="beta").update(status=CommunityStatus.SUSPENDED)
        assert notify_sweep() == 1

    assert queued == [("alpha", str(owed.pk))]
    assert str(told.pk) not in str(queued)
    assert str(young.pk) not in str(queued)
    assert str(theirs.pk) not in str(queued)


def test_the_sweep_delivers_what_it_queues_and_marks_it_notified(
    alpha: Community, member: Callable[..., User], monkeypatch: pytest.MonkeyPatch, mailoutbox: list[EmailMessage]
) -> None:
    monkeypatch.setattr(
        notify_compliance_officers, "apply_async", lambda args, **_: notify_compliance_officers.apply(args=args)
    )
    officer = member(alpha, "compliance_officer")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        grant = grant_in("alpha", member(alpha, "coordinator"), str(ParticipantFactory.create(community=alpha).pk))

    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        assert notify_sweep() == 1
        assert notify_sweep() == 0  # told: no longer owed

    [mail] = mailoutbox
    assert mail.to == [officer.email]
    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=grant.pk).notified_at is not None
