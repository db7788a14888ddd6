"""What every kind of export shares (audit trails and de-identified datasets): its lifecycle and its links."""

from __future__ import annotations

from django.db import models


class ExportStatus(models.TextChoices):
    """Where an export is: asked for and being built, ready to download, or failed (with a PHI-free reason)."""

    PENDING = "pending", "Pending"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


# A failed export's error when no broker took its task.
QUEUE_UNAVAILABLE = "queue_unavailable"


def export_links(own: str, export_status: str) -> dict[str, str]:
    """An export's links: where to poll and, once ready, where to download it and its manifest."""
    links = {"self": own}
    if export_status == ExportStatus.READY:
        links.update(download=own + "download/", manifest=own + "manifest/")
    return links
