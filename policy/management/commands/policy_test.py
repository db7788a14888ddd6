"""``policy_test [--dir DIR ...]``: run every Rego test under the embedded engine and regorus; report unreached rules.

By default it tests the service's policy (``POLICY_DIR``) and the policy that
guards the OPA sidecar's API (``OPA_AUTHZ_POLICY_DIR``, ``deploy/opa``). Each
test runs under regopy (rego-cpp, the engine the service embeds) and, where it
is installed, regorus (an independent engine): a test passes only when it
passes under every engine that ran, and the figures are given per engine; an
engine with no result for a test fails it. A ``not`` inside an ``every`` body
fails the run (:mod:`policy.review.vacuous`: regopy holds such a body true).
Rule coverage comes from the embedded engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from core.commands import ApplicationCommand
from policy.review import second_engine
from policy.review.testing import TestRun, discover_tests, run_tests
from policy.review.vacuous import canary_regopy, canary_regorus, negations
from policy.source import PolicySource

# A summary names this many failed tests; the lines above it name every one.
_NAMED = 10


@dataclass(frozen=True)
class EngineRun:
    """One engine's results over one directory (``run`` is ``None`` when the engine is not installed)."""

    name: str
    description: str
    run: TestRun | None


def _verdicts(engines: list[EngineRun], discovered: list[tuple[str, str]]) -> list[str]:
    """One line per discovered test: PASS when every engine that ran passed it, else FAIL with each engine's reason.

    A test an engine has no result for fails ("not run"): a worker that ends
    early, even with exit status 0, cannot pass the tests it never ran.
    """
    ran = [(engine.name, {(r.package, r.name): r for r in engine.run.results}) for engine in engines if engine.run]
    lines = []
    for package, test in discovered:
        failures = [
            f"{name}: {'not run' if result is None else result.detail or 'failed'}"
            for name, results in ran
            if (result := results.get((package, test))) is None or not result.passed
        ]
        lines.append(f"FAIL {package}.{test}  " + "; ".join(failures) if failures else f"PASS {package}.{test}")
    return lines


def _summary(engine: EngineRun, discovered: int) -> str:
    if engine.run is None:
        return f"  {second_engine.NOT_INSTALLED}"
    failed = engine.run.failed
    missing = discovered - len(engine.run.results)
    line = f"  {engine.description}: {len(engine.run.results)} tests, {len(failed)} failed"
    names = [f"{result.package}.{result.name}" for result in failed[:_NAMED]]
    more = f" and {len(failed) - _NAMED} more" if len(failed) > _NAMED else ""
    line += ": " + ", ".join(names) + more if failed else ""
    return line + (f"; {missing} of {discovered} not run" if missing else "")


def _failed(run: TestRun | None, discovered: int) -> int:
    """An engine's failed results, counting every discovered test it has no result for."""
    return 0 if run is None else len(run.failed) + abs(discovered - len(run.results))


def _canary_line(module: ModuleType | None) -> str:
    """Each engine's answer to the canary ``every c in ["a"] { not c == "a" }`` (true means vacuous)."""
    answers = [f"regopy {_canary_word(canary_regopy())}"]
    if module is not None:
        answers.append(f"{second_engine.MODULE} {_canary_word(canary_regorus(module))}")
    return '  canary `every c in ["a"] { not c == "a" }`: ' + ", ".join(answers) + " (no `not` in an `every` body)"


def _canary_word(vacuous: bool) -> str:
    return "true (vacuous)" if vacuous else "undefined (sound)"


class Command(ApplicationCommand):
    """Pass/fail per test and per engine, then the rule clauses no test reached; non-zero exit on any failure."""

    help = "Run the test_ rules of the Rego tests under regopy and regorus, and list the rules no test reached."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --dir, --fail-on-unreached and --require-second-engine."""
        parser.add_argument(
            "--dir",
            action="append",
            default=None,
            help="a policy directory, repeatable (default: POLICY_DIR and OPA_AUTHZ_POLICY_DIR)",
        )
        parser.add_argument("--fail-on-unreached", action="store_true", help="also fail when a rule is unreached")
        parser.add_argument(
            "--require-second-engine", action="store_true", help="fail when regorus is not installed (CI)"
        )

    def run(self, **options: Any) -> None:
        """Run every directory, report, then fail on any failure."""
        directories = [Path(name) for name in options["dir"] or [settings.POLICY_DIR, settings.OPA_AUTHZ_POLICY_DIR]]
        failed, unreached, installed = 0, 0, True
        for directory in directories:
            engines, run, directory_failed = self._test(directory)
            failed += directory_failed
            unreached += len(run.unreached)
            installed = installed and all(engine.run is not None for engine in engines)
        if failed:
            raise CommandError(f"{failed} policy test result(s) failed")
        if options["require_second_engine"] and not installed:
            raise CommandError(second_engine.NOT_INSTALLED)
        if options["fail_on_unreached"] and unreached:
            raise CommandError(f"{unreached} rule clause(s) not reached by any test")

    def _test(self, directory: Path) -> tuple[list[EngineRun], TestRun, int]:
        """Test one directory under both engines and write its report; return the runs and the failures."""
        source = PolicySource.from_directory(directory)
        if not source.tests:
            raise CommandError(f"no *_test.rego files in {directory}: nothing was tested")
        discovered = discover_tests(source)
        embedded = run_tests(directory)
        if not embedded.results:
            raise CommandError(f"no test_ rules in {directory}: nothing was tested")
        module = second_engine.load()
        engines = [
            EngineRun("regopy", f"regopy {metadata.version('regopy')} (rego-cpp, the embedded engine)", embedded),
            EngineRun(second_engine.MODULE, second_engine.describe(), second_engine.run_tests(source)),
        ]
        self.stdout.write(f"{directory}:")
        verdicts = _verdicts(engines, discovered)
        for line in verdicts:
            self.stdout.write(line)
        vacuous = negations(source)
        for negation in vacuous:
            self.stdout.write(f"FAIL {negation}")
        self.stdout.write("")
        for engine in engines:
            self.stdout.write(_summary(engine, len(discovered)))
        self.stdout.write(_canary_line(module))
        reached = len(embedded.clauses) - len(embedded.unreached)
        self.stdout.write(f"  rule clauses reached by a test (regopy): {reached} of {len(embedded.clauses)}")
        for clause in embedded.unreached:
            self.stdout.write(f"    not reached: {clause}")
        self.stdout.write("")
        return engines, embedded, sum(_failed(engine.run, len(discovered)) for engine in engines) + len(vacuous)
