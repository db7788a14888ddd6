"""Telling compliance officers, at once, that someone broke the glass."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone
from django_tenants.utils import schema_context

from security.breakglass.models import BreakGlassGrant
from security.models import Membership
from security.roles import Role
from tenants.models import Community


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=(OSError,), max_retries=10, retry_backoff=True)
def notify_compliance_officers(community: str, grant_id: str) -> int:
    """Mail every compliance officer of ``community``; return how many were told.

    The mail says who, what scope and until when, and links to the review
    queue; the reason stays in the service (it may describe a person).
    """
    record = Community.objects.get(slug=community)
    recipients = sorted(
        Membership.objects.filter(community=record, role=Role.COMPLIANCE_OFFICER, user__is_active=True).values_list(
            "user__email", flat=True
        )
    )
    with schema_context(record.schema_name):
        grant = BreakGlassGrant.objects.get(pk=grant_id)
        if not recipients:
            return 0
        send_mail(
            subject=f"[{community}] break-glass access opened",
            message=(
                f"User {grant.user_id} opened emergency access to {grant.scope} {grant.scope_id} "
                f"in community {community} at {grant.created_at:%Y-%m-%d %H:%M:%S} UTC, until "
                f"{grant.expires_at:%Y-%m-%d %H:%M:%S} UTC.\n\nEvery access under it is flagged in the audit log. "
                f"Review it: GET /api/v1/break-glass/?reviewed=false, then POST /api/v1/break-glass/{grant.id}/review/."
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=recipients,
        )
        BreakGlassGrant.objects.filter(pk=grant.pk).update(notified_at=timezone.now())
    return len(recipients)
