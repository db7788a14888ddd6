"""``rotate_keys --community alpha``: new key version, then re-encryption in batches with a progress bar.

Here, not in ``vault``, because the new version is an audit event
(:func:`security.actions.community_key_rotate`) and ``vault`` sits below the
audit log.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django_tenants.utils import schema_context

from core.commands import OperatorCommand
from core.tasks import publish
from security.actions import community_key_rotate
from tenants.selectors import community_get
from vault.models import RotationJob, RotationStatus
from vault.rotation import reencrypt_community
from vault.tasks import reencrypt_community_task

BAR_WIDTH = 30


class Command(OperatorCommand):
    """Rotate a community's keys; a rerun resumes an unfinished rotation instead of starting another."""

    help = "Rotate a community's keys and re-encrypt its rows (as a Celery task, or --inline)."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --community, --inline, --batch-size, --timeout."""
        parser.add_argument("--community", required=True)
        parser.add_argument("--inline", action="store_true", help="re-encrypt in this process, not on a worker")
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the worker")

    def run(self, **options: Any) -> None:
        """Rotate (or resume), then follow the re-encryption to the end."""
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        community = community_get(slug=options["community"])
        job, started = community_key_rotate(community_slug=community.slug, actor_id=self.actor_id)
        version = job.target_version
        with schema_context(community.schema_name):
            if not started:
                self.stdout.write(f"resuming the rotation of {community.slug} to key version {version}")
            else:
                self.stdout.write(f"{community.slug}: new key version {version}")
            if options["inline"]:
                job = reencrypt_community(target_version=version, batch_size=options["batch_size"], progress=self._bar)
            else:
                publish(reencrypt_community_task, args=(community.slug, version, options["batch_size"]))
                job = self._follow(version, options["timeout"])
        self.stdout.write(f"\n{community.slug}: {job.rows_done} rows re-encrypted, versions below {version} retired")

    def _follow(self, version: int, timeout: float) -> RotationJob:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = RotationJob.objects.filter(target_version=version).first()
            if job is not None:
                self._bar(job)
                if job.status == RotationStatus.DONE:
                    return job
            time.sleep(0.5)
        raise SystemExit("the worker has not finished yet: run rotate_keys again later to follow or resume it")

    def _bar(self, job: RotationJob) -> None:
        total = max(job.rows_total, 1)
        filled = min(BAR_WIDTH, BAR_WIDTH * job.rows_done // total)
        line = f"\r[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {job.rows_done}/{job.rows_total} rows"
        self.stdout.write(line, ending="")
        sys.stdout.flush()
