"""The task that builds a de-identified export (``security.tasks.export_enqueue`` queues it).

The task asks the policy for ``export.request`` again when it runs (see
:class:`security.tasks.CommunityTask`): a requester who lost the role, left
the community or whose second factor has aged past the policy's limit by
then gets no dataset built.
"""

from __future__ import annotations

from typing import Any

from celery import current_app as celery_app

from core.exports import ExportStatus
from security.tasks import CommunityTask
from services.exports.actions import deidentified_export_build
from services.exports.models import DeidentifiedExport


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
