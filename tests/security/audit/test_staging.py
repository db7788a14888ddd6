"""Recording through :func:`record`: an action's event commits with its transaction, and rolls back with it."""

from __future__ import annotations

from django.db import transaction
from django_tenants.utils import schema_context
from pytest_django import DjangoCaptureOnCommitCallbacks

from security.audit.live import verify_live
from security.audit.models import AuditEvent, PendingEvent
from security.audit.sequencer import audit_chain
from security.audit.staging import record
from tenants.models import Community


def test_an_event_recorded_in_a_transaction_is_chained_with_the_fields_the_action_named(
    alpha: Community, beta: Community, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    with schema_context("alpha"):
        with django_capture_on_commit_callbacks() as asked, transaction.atomic():
            record(
                action="community.rename",
                actor_id="operator",
                resource_type="community",
                resource_id="alpha",
                reasons=["requested_by_owner"],
                actor_roles=["platform_admin"],
                purpose="operations",
            )
        assert len(asked) == 1, "a worker is asked to chain it once the transaction commits"

        assert audit_chain() == 1
        event = AuditEvent.objects.get()
        assert (event.action, event.actor_id, event.resource_type, event.resource_id) == (
            "community.rename",
            "operator",
            "community",
            "alpha",
        )
        assert (event.outcome, event.reasons, event.actor_roles, event.purpose) == (
            "allow",
            ["requested_by_owner"],
            ["platform_admin"],
            "operations",
        )
        assert (event.http_status, event.request_id, event.client_ip, event.user_agent) == (0, "", "", "")
        assert (event.participant_pseudonyms, event.decision_id, event.break_glass) == ([], "", False)
        assert verify_live().intact
    with schema_context("beta"):
        assert audit_chain() == 0
        assert not AuditEvent.objects.exists(), "recorded in alpha's log only"


def test_an_event_recorded_in_a_transaction_that_rolls_back_is_not_chained(alpha: Community) -> None:
    with schema_context("alpha"):
        with transaction.atomic():
            record(
                action="community.rename",
                actor_id="operator",
                resource_type="community",
                resource_id="alpha",
                outcome="deny",
                reasons=["not_allowed"],
            )
            assert PendingEvent.objects.count() == 1
            transaction.set_rollback(True)  # what the action's failure does

        assert not PendingEvent.objects.exists()
        assert audit_chain() == 0
        assert not AuditEvent.objects.exists()
