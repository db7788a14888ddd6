"""``docs/hipaa-mapping.md`` stays true: every test it names exists, and no requirement is left without an answer.

The mapping's tables have the columns Requirement, Feature, Test(s) and
Decision. A row names its tests as ``tests/path.py::test_name`` (or
``::Class::method``) or ``policy/.../x_test.rego::test_name``; each must
exist (read with ``ast`` and a regular expression, nothing imported). A row
with no test needs a written decision, and so does every addressable
specification (marked ``(A)``). Every standard and implementation
specification of 164.312, every one of the 18 Safe Harbor identifiers and
every paragraph of 164.528 the mapping promises must have a row.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "docs" / "hipaa-mapping.md"
COLUMNS = ("Requirement", "Feature", "Test(s)", "Decision")
EMPTY = {"", "-", "—"}

_CITATION = re.compile(r"164\.\d{3}(?:\((?:[a-z]+|\d+|[A-Z])\))+")
_REFERENCE = re.compile(r"`([\w./-]+\.(?:py|rego))(?:::([\w:]+))?`")
_REGO_TEST = re.compile(r"^(test_\w+)\s+(?:if\b|:=|=)", re.MULTILINE)

SAFEGUARDS = tuple(
    f"164.312{paragraph}"
    for paragraph in (
        "(a)(1)",
        "(a)(2)(i)",
        "(a)(2)(ii)",
        "(a)(2)(iii)",
        "(a)(2)(iv)",
        "(b)",
        "(c)(1)",
        "(c)(2)",
        "(d)",
        "(e)(1)",
        "(e)(2)(i)",
        "(e)(2)(ii)",
    )
)
SAFE_HARBOR = (
    *(f"164.514(b)(2)(i)({letter})" for letter in "ABCDEFGHIJKLMNOPQR"),
    "164.514(b)(2)(ii)",
    "164.514(c)",
)
ACCOUNTING = tuple(
    f"164.528{paragraph}"
    for paragraph in (
        "(a)(1)",
        *(f"(a)(1)({number})" for number in ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix")),
        "(a)(2)",
        "(b)(1)",
        "(b)(2)",
        "(b)(3)",
        "(b)(4)",
        "(c)(1)",
        "(c)(2)",
        "(d)(1)",
        "(d)(2)",
        "(d)(3)",
    )
)
REQUIRED = (*SAFEGUARDS, *SAFE_HARBOR, *ACCOUNTING)


@dataclass(frozen=True)
class Row:
    """One row of a mapping table, with its line number."""

    line: int
    cells: dict[str, str]

    @property
    def citation(self) -> str:
        """The first citation of the Requirement cell ("" when it names none)."""
        found = _CITATION.search(self.cells["Requirement"])
        return found.group(0) if found else ""


def cells(line: str) -> list[str]:
    """The cells of a table line; a ``|`` inside backticks or escaped as ``\\|`` does not split."""
    found, current, in_code, previous = [], "", False, ""
    for character in line.strip().strip("|"):
        if character == "`":
            in_code = not in_code
        if character == "|" and not in_code and previous != "\\":
            found.append(current.strip())
            current = ""
        else:
            current += character
        previous = character
    return [*found, current.strip()]


def rows(text: str) -> list[Row]:
    """The rows of every table whose header is exactly the mapping's four columns."""
    found: list[Row] = []
    header: list[str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.lstrip().startswith("|"):
            header = None
            continue
        values = cells(line)
        if header is None:
            header = values
        elif tuple(header) == COLUMNS and not all(set(value) <= set("-: ") for value in values):
            found.append(Row(number, dict(zip(COLUMNS, values + [""] * (len(COLUMNS) - len(values)), strict=False))))
    return found


@cache
def python_tests(path: Path) -> frozenset[str]:
    """``name`` and ``Class::method`` of every test in a Python file."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
    return frozenset(name for name in names if name.split("::")[-1].startswith("test"))


@cache
def rego_tests(path: Path) -> frozenset[str]:
    """The ``test_`` rules of a Rego file."""
    return frozenset(_REGO_TEST.findall(path.read_text(encoding="utf-8")))


def reference_problem(path_text: str, name: str | None, root: Path) -> str | None:
    """Why a ``path::name`` reference does not name an existing test (None when it does)."""
    path = root / path_text
    if not path_text.startswith(("tests/", "policy/")) or not path.is_file():
        return f"{path_text}: no such test file"
    if not name:
        return f"{path_text}: names a file, not a test (write {path_text}::test_name)"
    known = rego_tests(path) if path.suffix == ".rego" else python_tests(path)
    return None if name in known else f"{path_text}::{name}: no such test"


def row_problems(row: Row, root: Path) -> list[str]:
    """Why one row fails the mapping's rules."""
    where = f"line {row.line} ({row.citation or row.cells['Requirement'][:40]})"
    references = _REFERENCE.findall(row.cells["Test(s)"])
    found = [f"{where}: {problem}" for path, name in references if (problem := reference_problem(path, name, root))]
    decided = row.cells["Decision"].strip() not in EMPTY
    if not row.citation:
        found.append(f"{where}: the requirement cites no paragraph of 45 CFR 164")
    if not references and not decided:
        found.append(f"{where}: neither a test nor a written decision")
    if "(A)" in row.cells["Requirement"].replace(row.citation, "") and not decided:
        found.append(f"{where}: an addressable specification needs its decision written down")
    if row.cells["Feature"].strip() in EMPTY and not decided:
        found.append(f"{where}: neither a feature nor a written decision")
    return found


def missing_requirements(text: str, required: tuple[str, ...] = REQUIRED) -> list[str]:
    """Required citations no row answers (a row for a sub-paragraph answers its paragraph)."""
    cited = {row.citation for row in rows(text)}
    return [
        f"{citation}: no row"
        for citation in required
        if citation not in cited and not any(other.startswith(citation + "(") for other in cited)
    ]


def problems(text: str, root: Path = ROOT, required: tuple[str, ...] = REQUIRED) -> list[str]:
    """Every reason the mapping ``text`` is not true of the tree at ``root`` (empty when it is)."""
    found = [problem for row in rows(text) for problem in row_problems(row, root)]
    return found + missing_requirements(text, required)


def test_the_hipaa_mapping_names_only_tests_that_exist_and_answers_every_requirement() -> None:
    text = MAPPING.read_text(encoding="utf-8")

    assert len(rows(text)) >= len(REQUIRED)
    assert problems(text) == []


@pytest.mark.parametrize("citation", [*SAFEGUARDS, *(f"164.514(b)(2)(i)({letter})" for letter in "ABCDEFGHIJKLMNOPQR")])
def test_each_technical_safeguard_and_each_safe_harbor_identifier_has_its_own_row(citation: str) -> None:
    assert citation in {row.citation for row in rows(MAPPING.read_text(encoding="utf-8"))}


def test_the_hipaa_page_links_the_mapping() -> None:
    assert "(hipaa-mapping.md)" in (ROOT / "docs" / "hipaa.md").read_text(encoding="utf-8")


def test_the_checker_names_a_missing_test_an_unanswered_row_and_a_missing_requirement(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_real.py").write_text(
        "def test_exists():\n    pass\n\nclass TestGroup:\n    def test_method(self):\n        pass\n", encoding="utf-8"
    )
    document = "\n".join(
        [
            "| Requirement | Feature | Test(s) | Decision |",
            "|---|---|---|---|",
            "| 164.312(a)(1) access | `a|b` the policy | `tests/test_real.py::test_exists`,"
            " `tests/test_real.py::TestGroup::test_method` | |",
            "| 164.312(b) audit | the log | `tests/test_real.py::test_gone` | |",
            "| 164.312(c)(1) integrity | AEAD | `tests/missing.py::test_any` | |",
            "| 164.312(d) authentication | passwords | `tests/test_real.py` | |",
            "| 164.312(a)(2)(iii) logoff (A) | sessions end | `tests/test_real.py::test_exists` | |",
            "| 164.312(e)(1) transmission | — | | |",
            "| 164.312(e)(2)(ii) encryption (A) | — | | Not met: a gap, written down. |",
            "| no citation | x | `tests/test_real.py::test_exists` | |",
        ]
    )
    required = ("164.312(a)(1)", "164.312(a)(2)(i)", "164.312(e)(2)")

    found = problems(document, tmp_path, required)

    assert found == [
        "line 4 (164.312(b)): tests/test_real.py::test_gone: no such test",
        "line 5 (164.312(c)(1)): tests/missing.py: no such test file",
        "line 6 (164.312(d)): tests/test_real.py: names a file, not a test (write tests/test_real.py::test_name)",
        "line 7 (164.312(a)(2)(iii)): an addressable specification needs its decision written down",
        "line 8 (164.312(e)(1)): neither a test nor a written decision",
        "line 8 (164.312(e)(1)): neither a feature nor a written decision",
        "line 10 (no citation): the requirement cites no paragraph of 45 CFR 164",
        "164.312(a)(2)(i): no row",
    ]
