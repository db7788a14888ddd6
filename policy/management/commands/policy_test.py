"""``policy_test [--dir DIR]``: run every Rego test with the embedded engine; report unreached rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from core.commands import ApplicationCommand
from policy.review.testing import run_tests
from policy.source import PolicySource


class Command(ApplicationCommand):
    """Pass/fail per test, then the rule clauses no test reached; non-zero exit on any failure."""

    help = "Run the test_ rules of policy/rego/*_test.rego and list the rules no test reached."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --dir and --fail-on-unreached."""
        parser.add_argument("--dir", default=None, help="policy directory (default: POLICY_DIR)")
        parser.add_argument("--fail-on-unreached", action="store_true", help="also fail when a rule is unreached")

    def run(self, **options: Any) -> None:
        """Run and report."""
        directory = Path(options["dir"] or settings.POLICY_DIR)
        if not PolicySource.from_directory(directory).tests:
            raise CommandError("no *_test.rego files: nothing was tested")
        report = run_tests(directory)
        for result in report.results:
            verdict = "PASS" if result.passed else "FAIL"
            self.stdout.write(
                f"{verdict} {result.package}.{result.name}" + (f"  {result.detail}" if result.detail else "")
            )
        reached = len(report.clauses) - len(report.unreached)
        self.stdout.write(f"\n{len(report.results)} tests, {len(report.failed)} failed")
        self.stdout.write(f"rule clauses reached by a test: {reached} of {len(report.clauses)}")
        for clause in report.unreached:
            self.stdout.write(f"  not reached: {clause}")
        if report.failed:
            raise CommandError(f"{len(report.failed)} policy test(s) failed")
        if not report.results:
            raise CommandError("no test_ rules found: nothing was tested")
        if options["fail_on_unreached"] and report.unreached:
            raise CommandError(f"{len(report.unreached)} rule clause(s) not reached by any test")
