"""``restore_test``: restore the latest backup into a scratch cluster and prove it (``make restore-test``).

Prints a line per check, keeps the report in ``BACKUP_REPORT_DIR`` (one file
per run, named by its time and verdict: the quarterly job's record), and exits
non-zero when any check fails (:mod:`operations.backups.proof` says what is
checked).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import CommandError

from core.commands import ApplicationCommand
from operations.backups.errors import BackupError
from operations.backups.proof import keep_report, restore_test


class Command(ApplicationCommand):
    """Restore and check the latest backup."""

    help = "Restore the latest backup into a scratch cluster, check it, print a report; non-zero on any failure."

    def run(self, **options: Any) -> None:
        """Run the restore test and report."""
        started = time.monotonic()
        try:
            report = restore_test()
        except BackupError as error:
            raise CommandError(str(error)) from error
        verdict = (
            f"restore test failed: {len(report.failures)} checks"
            if report.failures
            else f"restore test passed in {time.monotonic() - started:.1f} s"
        )
        kept = keep_report([*report.lines, verdict], passed=not report.failures)
        for line in report.lines:
            self.stdout.write(line)
        self.stdout.write(f"report kept in {kept}")
        if report.failures:
            raise CommandError(verdict)
        self.stdout.write(verdict)
