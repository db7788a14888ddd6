"""Break-glass notification: the community's compliance officers are mailed when a grant opens, without its reason."""

from __future__ import annotations

from collections.abc import Callable

from django.core.mail import EmailMessage
from django_tenants.utils import schema_context

from security.breakglass.models import BreakGlassGrant
from security.breakglass.tasks import notify_compliance_officers
from security.models import User
from tenants.models import Community
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
