"""``restore_test``: restore the latest backup into a scratch cluster and prove it (``make restore-test``).

Prints a line per check and exits non-zero when any fails
(:mod:`operations.backups.proof` says what is checked).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import CommandError

from core.commands import ApplicationCommand
from operations.backups.errors import BackupError
from operations.backups.proof import restore_test


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
        for line in report.lines:
            self.stdout.write(line)
        if report.failures:
            raise CommandError(f"restore test failed: {len(report.failures)} checks")
        self.stdout.write(f"restore test passed in {time.monotonic() - started:.1f} s")
