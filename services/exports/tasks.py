"""The task that builds a de-identified export, and handing it to the broker.

The task asks the policy for ``export.request`` again when it runs (see
:class:`gateway.tasks.CommunityTask`): a requester who lost the role, left
the community or whose second factor has aged past the policy's limit by
then gets no dataset built.
"""

from __future__ import annotations

from typing import Any

from celery import current_app as celery_app
from django.utils import timezone
from django_tenants.utils import schema_context

from gateway.tasks import CommunityTask, enqueue_for_caller
from security.audit.models import ExportStatus
from security.identity.tokens import AccessClaims
from services.exports.actions import deidentified_export_build
from services.exports.errors import ExportErrorCode
from services.exports.models import DeidentifiedExport
from tenants.models import Community


class DeidentifiedExportTask(CommunityTask):
    """Build one de-identified export in its community's schema."""

    name = "services.exports.tasks.deidentified_export"
    policy_action = "export.request"
    policy_resource_type = "export"

    def run(self, export_id: str, **_: Any) -> str:
        """Build the export unless it is already built or failed (a redelivered message does nothing)."""
        export = DeidentifiedExport.objects.select_related("study").filter(pk=export_id).first()
        if export is None:
            return "missing"
        if export.status != ExportStatus.PENDING:
            return str(export.status)
        return str(deidentified_export_build(export).status)


deidentified_export_task = celery_app.register_task(DeidentifiedExportTask())


def deidentified_export_enqueue(export: DeidentifiedExport, *, claims: AccessClaims, community: Community) -> None:
    """Queue the build with who asked and how they signed in; mark the export failed if no broker takes it."""

    def refused() -> None:
        with schema_context(community.schema_name):
            DeidentifiedExport.objects.filter(pk=export.id).update(
                status=ExportStatus.FAILED, error=ExportErrorCode.QUEUE_UNAVAILABLE, finished_at=timezone.now()
            )

    enqueue_for_caller(
        deidentified_export_task,
        claims=claims,
        community=community,
        on_refused=refused,
        export_id=str(export.id),
        resource_id=str(export.id),
    )
