"""Attacks on break-glass: bending emergency access so that nobody looks at it, or nobody hears of it.

One test per finding of the security review (findings 12, 13 and 16), named
after what the attacker tries; the early end of a grant (revocation) is what
makes "reviewed only once it has ended" possible.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core.mail import EmailMessage
from django.utils import timezone
from django_tenants.utils import schema_context
from kombu import Producer
from kombu.exceptions import OperationalError
from pytest_django import DjangoCaptureOnCommitCallbacks

from gateway.logging import WithholdExceptionMessageFilter
from security.breakglass import tasks as breakglass_tasks
from security.breakglass.models import BreakGlassGrant
from security.models import User
from tenants.models import Community
from tests.factories import MembershipFactory, ParticipantFactory
from tests.support.audit import chained_events
from tests.support.breakglass import BREAK_GLASS, REASON, review_route
from tests.support.clients import MemberClient
from tests.support.workers import worker_logging

PHI = "MRN-0001 belongs to Ada Lovelace"


@pytest.fixture
def clinician_and_officer(member_client: MemberClient) -> tuple[Any, User]:
    """A coordinator of alpha, with a fresh second factor, who is also alpha's compliance officer."""
    client, user = member_client("coordinator", second_factor=True)
    MembershipFactory.create(user=user, community=Community.objects.get(slug="alpha"), role="compliance_officer")
    return client, user


def test_a_coordinator_who_is_also_compliance_officer_reviews_their_own_grant(
    alpha: Community, clinician_and_officer: tuple[Any, User]
) -> None:
    """Security review finding 13: a member holding a clinician role and compliance_officer reviews their own grant.

    The refusal is a 403 problem document and is on record as a denied review.
    """
    client, user = clinician_and_officer
    participant = ParticipantFactory.create(community=alpha)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        opened = client.post(
            BREAK_GLASS, {"reason": REASON, "participant": str(participant.pk), "minutes": 1}, format="json"
        )
    assert opened.status_code == 201, opened.content
    with schema_context("alpha"):
        grant = BreakGlassGrant.objects.get(pk=opened.json()["id"])

    with time_machine.travel(start + timedelta(minutes=2), tick=False):  # expired: only the holder stands in the way
        response = client.post(review_route(grant), {"comment": "Justified, says the holder"}, format="json")

    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "self_review"
    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=grant.pk).reviewed_at is None
        refusal = chained_events().get(action="break_glass.review", outcome="deny")
    assert (refusal.actor_id, refusal.resource_id, refusal.reasons) == (str(user.pk), str(grant.pk), ["self_review"])


def test_a_grant_is_reviewed_and_closed_while_still_in_use(
    alpha: Community, member: Callable[..., User], member_client: MemberClient
) -> None:
    """Security review finding 13 (its other half): a grant is reviewed, and so closed, while its holder still uses it.

    A review looks at the uses of a grant; while the grant is active more may
    follow, unseen. Review is refused (409) until it expires or is revoked.
    """
    holder = member(alpha, "coordinator")
    participant = ParticipantFactory.create(community=alpha)
    with schema_context("alpha"):
        grant = BreakGlassGrant.objects.create(
            user_id=holder.pk,
            scope="participant",
            scope_id=str(participant.pk),
            reason=REASON,
            expires_at=timezone.now() + timedelta(minutes=30),
        )
    officer, _ = member_client("compliance_officer")

    response = officer.post(review_route(grant), {"comment": "Looks fine so far"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "grant_still_active"
    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=grant.pk).reviewed_at is None


def test_a_broker_outage_turns_an_opened_grant_into_a_500_with_no_mail(
    alpha: Community,
    member: Callable[..., User],
    member_client: MemberClient,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    mailoutbox: list[EmailMessage],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Security review finding 12: with the broker down, opening a grant fails after commit and no one is ever told.

    The publish itself fails (as kombu fails on a refused connection); the
    grant must still open (201), the failure be logged without the broker's
    credentials, and the periodic sweep deliver the notice later.
    """
    officer = member(alpha, "compliance_officer")
    client, _ = member_client("coordinator", second_factor=True)
    participant = ParticipantFactory.create(community=alpha)

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("[Errno 111] Connection refused: amqp://guest:s3cret@rabbit:5672/cg")

    monkeypatch.setattr(Producer, "publish", broker_down)
    start = timezone.now()
    with (
        time_machine.travel(start, tick=False),
        caplog.at_level(logging.WARNING),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(BREAK_GLASS, {"reason": REASON, "participant": str(participant.pk)}, format="json")

    assert response.status_code == 201, response.content
    assert mailoutbox == []
    assert "s3cret" not in caplog.text
    assert "OperationalError" in caplog.text
    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=response.json()["id"]).notified_at is None

    monkeypatch.undo()  # the broker is back; the sweep's task runs here, as a worker would run it
    notify = breakglass_tasks.notify_compliance_officers
    monkeypatch.setattr(notify, "apply_async", lambda args, **_: notify.apply(args=args))
    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        assert breakglass_tasks.notify_sweep() == 1

    [mail] = mailoutbox
    assert mail.to == [officer.email]
    with schema_context("alpha"):
        assert BreakGlassGrant.objects.get(pk=response.json()["id"]).notified_at is not None


def test_a_worker_logs_exception_messages_that_may_carry_phi() -> None:
    """Security review finding 16: in a Celery worker, a failing task's exception message reaches the log.

    Celery's logging set-up must leave the root logger's handlers filtered by
    ``WithholdExceptionMessageFilter``, so the message is withheld.
    """
    try:
        raise ValueError(PHI)
    except ValueError:
        record = logging.LogRecord("celery.app.trace", logging.ERROR, __file__, 1, "Task failed", (), sys.exc_info())

    with worker_logging() as handlers:
        assert handlers
        assert all(
            any(isinstance(entry, WithholdExceptionMessageFilter) for entry in handler.filters) for handler in handlers
        )
        for handler in handlers:
            handler.filter(record)

    assert PHI not in logging.Formatter().format(record)
