"""Telling compliance officers, at once, that someone broke the glass, and again until they have been told.

Delivery is durable: the grant row with ``notified_at`` empty is the outbox
(written in the transaction that opens the grant). Once that commits, a task
is queued; if the broker is down, the request still succeeds and the periodic
:func:`notify_sweep` queues the task again later. The task mails, retries
with backoff while the mail server fails, and sets ``notified_at`` only after
the mail went out; a grant already marked is left alone, so a task queued
twice mails once (at least once, at most once per successful delivery).

:func:`alarm_sweep` is the alarm: per community, one log line per alarmed
grant on every sweep, and one mail to its owners and compliance officers
listing the alarms not mailed before (ids, codes and times: no reason, no
PHI).

These tasks are not :class:`security.tasks.CommunityTask`: no member asks for
them, and a notice must go out even if its holder's membership ends meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from amqp.exceptions import AMQPError
from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context
from kombu.exceptions import KombuError

from core.tasks import publish
from security.audit.hashing import format_time
from security.breakglass.models import AlarmCode, BreakGlassAlarm, BreakGlassGrant
from security.breakglass.selectors import alarm_recipients, officers_of, unnotified_grants
from tenants.models import Community, CommunityStatus

logger = logging.getLogger(__name__)

# What publishing a task raises when the broker cannot take it (kombu wraps most as OperationalError).
BROKER_ERRORS = (KombuError, AMQPError, OSError)
# At most this many owed notices are queued per community and sweep; the next sweep takes the rest.
SWEEP_BATCH = 100


def enqueue_notification(*, community: str, grant_id: str) -> bool:
    """Queue the notice of grant ``grant_id``; False (logged, never raised) when the broker cannot take it.

    Called after the grant's transaction committed: raising here would turn an
    opened grant into a server error. The grant stays in the outbox and
    :func:`notify_sweep` queues it again.
    """
    try:
        publish(notify_compliance_officers, args=(community, grant_id))
    except BROKER_ERRORS as error:
        # Ids and the error's type only: the message may carry the broker URL, with its password.
        logger.warning(
            "could not queue the break-glass notice of grant %s in %s (%s); the sweep will queue it again",
            grant_id,
            community,
            type(error).__name__,
        )
        return False
    return True


def _mail(grant: BreakGlassGrant, community: str, recipients: list[str]) -> None:
    send_mail(
        subject=f"[{community}] break-glass access opened",
        message=(
            f"User {grant.user_id} opened emergency access to {grant.scope} {grant.scope_id} "
            f"in community {community} at {grant.created_at:%Y-%m-%d %H:%M:%S} UTC, until "
            f"{grant.expires_at:%Y-%m-%d %H:%M:%S} UTC.\n\nEvery access under it is flagged in the audit log. "
            f"Revoke it early: POST /api/v1/break-glass/{grant.id}/revoke/. Once it has ended, review it: "
            f"GET /api/v1/break-glass/?reviewed=false, then POST /api/v1/break-glass/{grant.id}/review/."
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=recipients,
    )


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OSError,),  # smtplib's errors and refused connections are OSErrors
    max_retries=10,
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
)
def notify_compliance_officers(community: str, grant_id: str) -> int:
    """Mail every compliance officer of ``community`` about one grant, once; return how many were told.

    The mail says who, what scope and until when, and links to the review
    queue; the reason stays in the service (it may describe a person). The
    grant's row is locked while the mail goes out, so two copies of this task
    never both send it; ``notified_at`` is set only after it was sent.
    """
    record = Community.objects.filter(slug=community).first()
    if record is None:
        return 0
    recipients = officers_of(record)
    with schema_context(record.schema_name), transaction.atomic():
        grant = (
            BreakGlassGrant.objects.select_for_update(skip_locked=True)
            .filter(pk=grant_id, notified_at__isnull=True)
            .first()
        )
        if grant is None:  # told already, being told by another worker, or no such grant
            return 0
        if not recipients:
            # Left owed: the sweep tries again, and the first compliance officer added is told.
            logger.warning("break-glass grant %s in %s: no compliance officer to notify", grant_id, community)
            return 0
        _mail(grant, community, recipients)
        # An update, not a save: the policy's kept answers do not depend on notified_at.
        BreakGlassGrant.objects.filter(pk=grant.pk).update(notified_at=timezone.now())
    return len(recipients)


@shared_task(acks_late=True)
def notify_sweep() -> int:
    """Periodic (``BREAK_GLASS_NOTIFY_SWEEP_SECONDS``): queue every notice still owed in active communities.

    A notice is owed when its grant was opened more than
    ``BREAK_GLASS_NOTIFY_DELAY_SECONDS`` ago and ``notified_at`` is still
    empty: its task was never queued (the broker was down) or failed for good.
    Returns how many were queued.
    """
    queued = 0
    for slug, schema in Community.objects.filter(status=CommunityStatus.ACTIVE).values_list("slug", "schema_name"):
        with schema_context(schema):
            owed = list(
                unnotified_grants(older_than_seconds=settings.BREAK_GLASS_NOTIFY_DELAY_SECONDS).values_list(
                    "pk", flat=True
                )[:SWEEP_BATCH]
            )
        queued += sum(enqueue_notification(community=slug, grant_id=str(pk)) for pk in owed)
    return queued


# Suspended communities too: a suspension stops their requests, not the review owed for grants used before it.
SWEPT = (CommunityStatus.ACTIVE, CommunityStatus.SUSPENDED)


@shared_task(acks_late=True)
def alarm_sweep() -> int:
    """Periodic (``BREAK_GLASS_ALARM_SWEEP_SECONDS``): raise, log and mail the break-glass alarms of each community.

    Active and suspended communities are swept; one whose sweep fails is
    logged and the others are swept all the same. Returns how many grants
    stand alarmed.
    """
    alarmed = 0
    for community in Community.objects.filter(status__in=SWEPT):
        try:
            alarmed += community_alarms(community, now=timezone.now())
        except Exception:  # one schema's trouble must not silence every other community's alarms
            logger.exception("break-glass alarm sweep failed: community=%s", community.slug)
    return alarmed


def community_alarms(community: Community, *, now: datetime) -> int:
    """Raise the alarms of one community's grants, log each alarmed grant, mail the alarms not mailed yet."""
    from security.breakglass.actions import alarms_raise  # noqa: PLC0415 - actions import this module

    with schema_context(community.schema_name):
        standing = alarms_raise(community=community, now=now)
        for grant, codes in standing:
            # Stable fields only, to alert on: never the reason, the scope or the holder.
            logger.error(
                "break-glass alarm: community=%s grant=%s alarms=%s", community.slug, grant.id, ",".join(codes)
            )
        _mail_alarms(community, now)
    return len(standing)


def _mail_alarms(community: Community, now: datetime) -> None:
    with transaction.atomic():
        owed = list(
            BreakGlassAlarm.objects.select_for_update(skip_locked=True)
            .filter(mailed_at__isnull=True)
            .select_related("grant")
            .order_by("raised_at", "id")
        )
        if not owed:
            return
        recipients = alarm_recipients(community)
        if not recipients:
            logger.error("break-glass alarms: community=%s has no owner or compliance officer to mail", community.slug)
            return
        try:
            send_mail(
                subject=f"[{community.slug}] {len(owed)} break-glass alarm(s)",
                message=_digest(community, owed),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=recipients,
            )
        except OSError as error:  # smtplib's errors: left unmailed, the next sweep mails them
            logger.error(
                "break-glass alarms: community=%s digest not mailed (%s)", community.slug, type(error).__name__
            )
            return
        BreakGlassAlarm.objects.filter(pk__in=[alarm.pk for alarm in owed]).update(mailed_at=now)


def _digest(community: Community, alarms: Sequence[BreakGlassAlarm]) -> str:
    lines = [
        f"Break-glass grants of community {community.slug} need attention ({len(alarms)} new alarm(s)):",
        "",
    ]
    for alarm in alarms:
        grant = alarm.grant
        lines.append(
            f"- grant {grant.id}: {alarm.code} ({AlarmCode(alarm.code).label}); opened "
            f"{format_time(grant.created_at)}, ends {format_time(grant.ends_at)}, raised {format_time(alarm.raised_at)}"
        )
    lines += [
        "",
        "See GET /api/v1/break-glass/?alarm=true; review an ended grant with POST /api/v1/break-glass/{id}/review/.",
    ]
    return "\n".join(lines)
