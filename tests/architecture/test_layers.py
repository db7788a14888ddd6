"""The import contract holds on this tree, fails the build on an upward import, and leaves no package cycle.

``make lint`` runs ``lint-imports`` over the contract in ``pyproject.toml``;
these tests prove the contract is not decorative: a copy of the tree with one
deliberate violation breaks it, and the package graph (the contract's named
exceptions aside) has no cycle.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
PACKAGES: list[str] = CONFIG["root_packages"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(  # noqa: S603 - our own venv's tool, fixed arguments
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def copy_of_the_tree(destination: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, destination / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", destination / "pyproject.toml")
    return destination


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "violation", "contract"),
    [
        ("vault/shortcut.py", "from services.participants.models import Participant", "security core"),
        ("core/shortcut.py", "from tenants.models import Community", "kernel imports nothing"),
        ("tenants/shortcut.py", "from security.models import Membership", "Edge to kernel"),
        ("services/participants/shortcut.py", "from services.consents.models import Consent", "research apps"),
    ],
)
def test_an_upward_import_breaks_the_build(tmp_path: Path, module: str, violation: str, contract: str) -> None:
    tree = copy_of_the_tree(tmp_path)
    (tree / module).write_text(f'"""A deliberate violation."""\n\n{violation}\n', encoding="utf-8")

    result = lint_imports(tree)

    assert result.returncode == 1
    assert f"{contract}" in result.stdout
    assert "BROKEN" in result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout


def package_graph() -> dict[str, set[str]]:
    """Imports between top-level packages, without the contract's named exceptions."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    ignored = {
        tuple(part.strip() for part in rule.split("->"))
        for contract in CONFIG["contracts"]
        for rule in contract.get("ignore_imports", [])
    }
    edges: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for package in PACKAGES:
        for other in PACKAGES:
            if package == other:
                continue
            for found in graph.find_matching_direct_imports(import_expression=f"{package}.** -> {other}.**"):
                if (found["importer"], found["imported"]) not in ignored:
                    edges[package].add(other)
    return edges


def test_the_package_graph_has_no_cycle_but_the_named_exceptions() -> None:
    edges = package_graph()
    visiting: set[str] = set()
    done: set[str] = set()
    cycles: list[str] = []

    def visit(package: str, path: list[str]) -> None:
        if package in done:
            return
        if package in visiting:
            cycles.append(" -> ".join([*path[path.index(package) :], package]))
            return
        visiting.add(package)
        for imported in sorted(edges[package]):
            visit(imported, [*path, package])
        visiting.discard(package)
        done.add(package)

    for package in PACKAGES:
        visit(package, [])

    assert cycles == []
    assert "services" not in edges["security"] | edges["policy"] | edges["vault"] | edges["tenants"]
    assert edges["core"] == set()
