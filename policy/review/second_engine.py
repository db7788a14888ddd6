"""The second Rego engine of the review tools: regorus, Microsoft's Rust interpreter, independent of rego-cpp.

It is a development dependency (the package gordon-to-regorus, a build of
microsoft/regorus): the service never decides with it. ``policy_test`` runs the
Rego tests under it too, and ``tests/policy/test_portability.py`` compares its
decisions with the embedded engine's. Where it is not installed, the tools say
so (:data:`NOT_INSTALLED`) instead of passing quietly.
"""

from __future__ import annotations

import importlib
import json
from importlib import metadata
from types import ModuleType
from typing import TYPE_CHECKING, Any

from policy.review.testing import TestResult, TestRun, discover_tests

if TYPE_CHECKING:
    from policy.source import PolicySource

MODULE = "regorus"
NOT_INSTALLED = "regorus: not installed, not run"
# regorus appends a Rust stack backtrace to its errors: the message is what comes before it.
_BACKTRACE = "Stack backtrace:"


class SecondEngineError(Exception):
    """regorus refused the policy or failed to evaluate a query; the message is its own, without the backtrace."""


def load() -> ModuleType | None:
    """The regorus module, or ``None`` when it is not installed."""
    try:
        return importlib.import_module(MODULE)
    except ImportError:
        return None


def describe() -> str:
    """``regorus <version> (<distribution>)``, as installed."""
    distributions = metadata.packages_distributions().get(MODULE, [])
    for name in distributions:
        return f"{MODULE} {metadata.version(name)} ({name}, a build of microsoft/regorus)"
    return MODULE


def _message(error: Exception) -> str:
    return " ".join(str(error).split(_BACKTRACE, 1)[0].split())[:300]


class RegorusPolicy:
    """One policy directory's modules and data loaded into regorus; each query runs on a fresh clone.

    Data is mounted at the root, as the embedded engine and ``opa test`` do
    with the ``data.json`` of the loaded directory.
    """

    def __init__(self, module: ModuleType, source: PolicySource, *, with_tests: bool = False) -> None:
        self._engine = module.Engine()
        files = {**source.modules, **(source.tests if with_tests else {})}
        try:
            for name, text in files.items():
                self._engine.add_policy(name, text)
            self._engine.add_data_json(source.data_json)
        except RuntimeError as error:
            raise SecondEngineError(_message(error)) from error

    def query(self, query: str, document: Any = None) -> Any:
        """The value of ``query`` (``None`` when undefined), with ``document`` as the input if given."""
        engine = self._engine.clone()
        try:
            if document is not None:
                engine.set_input_json(json.dumps(document))
            results = engine.eval_query(query).get("result", [])
        except RuntimeError as error:
            raise SecondEngineError(_message(error)) from error
        if not results:
            return None
        return results[0]["expressions"][0]["value"]


def _run_one(policy: RegorusPolicy, package: str, name: str) -> TestResult:
    try:
        value = policy.query(f"data.{package}.{name}")
    except SecondEngineError as error:
        return TestResult(package, name, passed=False, detail=f"error: {error}")
    if value is True:
        return TestResult(package, name, passed=True)
    return TestResult(package, name, passed=False, detail="undefined" if value is None else json.dumps(value)[:200])


def run_tests(source: PolicySource) -> TestRun | None:
    """Every ``test_`` rule under regorus (``None`` when it is not installed).

    A test passes only when its value is ``true``, as under ``opa test``; a
    policy regorus cannot load fails every test with its reason.
    """
    module = load()
    if module is None:
        return None
    tests = discover_tests(source)
    run = TestRun()
    try:
        policy = RegorusPolicy(module, source, with_tests=True)
    except SecondEngineError as error:
        run.results = [
            TestResult(package, name, passed=False, detail=f"does not load: {error}") for package, name in tests
        ]
        return run
    run.results = [_run_one(policy, package, name) for package, name in tests]
    return run
