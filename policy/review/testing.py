"""Run the policy's Rego tests with the embedded engine, and report the rule clauses no test reached.

Coverage comes from instrumenting the policy: every rule clause prints a tag
when its whole body held. The tests run in worker processes
(:mod:`policy.review.worker`) so that one crashing the native interpreter
fails that test, not the review.
"""

from __future__ import annotations

import ctypes
import json
import re
import subprocess  # nosec B404 - runs this package's own test worker
import sys
from dataclasses import dataclass, field
from pathlib import Path

import regopy

from policy.source import PolicySource

_PACKAGE_RE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_TEST_RE = re.compile(r"^(test_\w+)\s+(?:if\b|:=|=|\{)", re.MULTILINE)
# A rule clause that opens a block: `name(args) if {`, `name if {`, or `} else := value if {`.
_BLOCK_HEAD_RE = re.compile(r"^(?:\}\s*else\b.*|(?!default\b)[a-z_][\w]*(?:\(.*\))?.*)\bif\s*\{\s*$")
# A one-line clause: `name(args) if expression` (no block).
_LINE_HEAD_RE = re.compile(r"^((?!default\b)[a-z_][\w]*(?:\(.*?\))?(?:\s*:=\s*.+?)?)\s+if\s+(?!\{)(.+)$")
_COVERAGE_TAG = "policy-coverage"
_BUNDLE_MODE, _QUERY_MODE = "bundle", "query"
_BUILT = "BUILT"
_EXEMPT_MARK = "# coverage: "


@dataclass(frozen=True)
class TestResult:
    """One test rule and its verdict."""

    package: str
    name: str
    passed: bool
    detail: str = ""


@dataclass
class TestRun:
    """All results, and the policy clauses no passing test reached."""

    results: list[TestResult] = field(default_factory=list)
    clauses: list[str] = field(default_factory=list)
    reached: set[str] = field(default_factory=set)

    @property
    def failed(self) -> list[TestResult]:
        """The tests that did not pass."""
        return [result for result in self.results if not result.passed]

    @property
    def unreached(self) -> list[str]:
        """Clauses (``file:line rule``) that no test made true."""
        return [clause for clause in self.clauses if clause.split(" ", 1)[0] not in self.reached]


def _clause_name(line: str, lines: list[str], number: int) -> str:
    """The rule a clause belongs to; an ``else`` block is named after its rule."""
    if not line.startswith("}"):
        return line.strip().split("(")[0].split(" ")[0]
    for previous in reversed(lines[: number - 1]):
        if previous and not previous[0].isspace() and not previous.startswith(("}", "#")):
            return previous.split("(")[0].split(" ")[0] + " else"
    return "else"


def instrument(name: str, text: str) -> tuple[str, list[str]]:
    """Add a ``print`` at the end of every rule clause body; return the new text and the clause list.

    A clause prints ``policy-coverage <file>:<line>`` when its whole body held,
    which is what "reached by a test" means here.
    """
    lines = text.splitlines()
    output: list[str] = []
    clauses: list[str] = []
    open_block: str | None = None
    for number, line in enumerate(lines, start=1):
        tag = f"{name}:{number}"
        if number > 1 and _EXEMPT_MARK in lines[number - 2]:
            output.append(line)  # covered elsewhere, said so in the comment above it
            continue
        if open_block is not None and line.startswith("}"):
            output.append(f'\tprint("{_COVERAGE_TAG} {open_block}")')
            open_block = None
        if _BLOCK_HEAD_RE.match(line):
            output.append(line)
            open_block = tag
            clauses.append(f"{tag} {_clause_name(line, lines, number)}")
            continue
        single = _LINE_HEAD_RE.match(line) if open_block is None else None
        if single:
            output.extend(
                [f"{single.group(1)} if {{", f"\t{single.group(2)}", f'\tprint("{_COVERAGE_TAG} {tag}")', "}"]
            )
            clauses.append(f"{tag} {single.group(1).split('(')[0].split(' ')[0]}")
            continue
        output.append(line)
    return "\n".join(output) + "\n", clauses


def discover_tests(source: PolicySource) -> list[tuple[str, str]]:
    """(package, test rule) of every ``test_`` rule, in file order."""
    found: list[tuple[str, str]] = []
    for test_file, text in source.tests.items():
        package_match = _PACKAGE_RE.search(text)
        package = package_match.group(1) if package_match else test_file
        found.extend((package, name) for name in dict.fromkeys(_TEST_RE.findall(text)))
    return found


def run_tests(directory: Path) -> TestRun:
    """Evaluate every ``test_`` rule of the ``*_test.rego`` files against the (instrumented) policy.

    The tests run in a worker process (``python -m policy.review.worker``): a
    test the interpreter cannot handle may crash it (regopy 1.5 segfaults on
    some ``with`` overrides), and that must fail one test, not the review. A
    crashed test is reported as failed and the worker restarts after it.

    The worker first compiles every test into one bundle with an entrypoint per
    test (about 5 ms a test, against 200 ms for a query that compiles the
    policy anew). A test the compiler itself cannot take ends the worker before
    it says ``BUILT``: the tests then run one query each, as they did before.
    """
    source = PolicySource.from_directory(directory)
    tests = discover_tests(source)
    run = TestRun(clauses=[clause for name, text in source.modules.items() for clause in instrument(name, text)[1]])
    position, mode = 0, _BUNDLE_MODE
    while position < len(tests):
        position, built = _run_worker(directory, position, tests, run, mode)
        if not built and mode == _BUNDLE_MODE:
            mode = _QUERY_MODE
    return run


def _run_worker(directory: Path, start: int, tests: list[tuple[str, str]], run: TestRun, mode: str) -> tuple[int, bool]:
    """Run tests from ``start`` in one worker; return where the next worker must start, and whether it compiled."""
    command = [sys.executable, "-m", "policy.review.worker", str(directory), str(start), mode]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 # nosec B603
    current, finished, built = start, start, mode == _QUERY_MODE
    for line in completed.stdout.splitlines():
        if line == _BUILT:
            built = True
        elif line.startswith("START "):
            current = int(line.split()[1])
        elif line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            run.results.append(TestResult(**result))
            finished = current + 1
        elif line.startswith(_COVERAGE_TAG + " "):
            run.reached.add(line.split(" ", 1)[1])
    if completed.returncode == 0 and finished == len(tests):
        return finished, built
    if not built:
        return start, False  # the compiler could not take the tests: run them one query each
    # The test it was on, or (exit 0 between two tests) the one it should have run next, fails.
    pending = current if finished <= current else finished
    if pending < len(tests) and (finished <= current or completed.returncode == 0):
        package, name = tests[pending]
        run.results.append(TestResult(package, name, passed=False, detail=_why_ended(completed.returncode)))
        return pending + 1, built
    raise RuntimeError(f"the policy test worker failed: {completed.stderr.strip()[-500:]}")


def _why_ended(returncode: int) -> str:
    if returncode == 0:
        return "the worker ended (exit 0) without this test's verdict"
    return f"crashed the embedded interpreter (exit {returncode}); `with input as` a rule is not supported"


def _entrypoint(package: str, test_name: str) -> str:
    return f"{package.replace('.', '/')}/{test_name}"


def _run_one(
    interpreter: regopy.Interpreter, compiled: regopy.Bundle | None, package: str, test_name: str
) -> TestResult:
    try:
        if compiled is None:
            output = str(interpreter.query(f"data.{package}.{test_name}"))
        else:
            output = str(interpreter.query_bundle_entrypoint(compiled, _entrypoint(package, test_name)))
    except regopy.RegoError as error:
        return TestResult(package, test_name, passed=False, detail=f"error: {str(error).strip()[:200]}")
    except ValueError:  # regopy's Output parses the interpreter's answer as JSON; some are not
        return TestResult(package, test_name, passed=False, detail="error: the interpreter's answer is not JSON")
    passed = output.startswith('{"expressions":[true]')
    return TestResult(package, test_name, passed=passed, detail="" if passed else output[:200])


def _compile(interpreter: regopy.Interpreter, tests: list[tuple[str, str]]) -> regopy.Bundle | None:
    """One bundle with an entrypoint per test, or ``None`` (one query per test) when it does not compile."""
    try:
        compiled = interpreter.build(None, tuple(_entrypoint(package, name) for package, name in tests))
    except regopy.RegoError:
        return None
    return compiled if compiled.ok() else None


def worker_main(directory: Path, start: int, mode: str = _BUNDLE_MODE) -> None:
    """Inside the worker: run tests from ``start``, one ``START``/``RESULT`` line pair each."""
    source = PolicySource.from_directory(directory)
    interpreter = regopy.Interpreter()
    for name, text in source.modules.items():
        interpreter.add_module(name, instrument(name, text)[0])
    for name, text in source.tests.items():
        interpreter.add_module(name, text)
    interpreter.add_data_json(source.data_json)
    tests = discover_tests(source)
    compiled = _compile(interpreter, tests) if mode == _BUNDLE_MODE else None
    print(_BUILT, flush=True)  # past the compiler: a crash from here on is one test's
    libc = ctypes.CDLL(None)
    for index, (package, name) in enumerate(tests):
        if index < start:
            continue
        print(f"START {index}", flush=True)
        result = _run_one(interpreter, compiled, package, name)
        libc.fflush(None)  # the interpreter's print() output comes before the verdict
        print("RESULT " + json.dumps(result.__dict__), flush=True)
