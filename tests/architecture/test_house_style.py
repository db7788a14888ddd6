"""The house style as checks: error codes come from enums, research views never write, apps have actions.

Also: a secret a client sent is compared only through ``core.comparison`` (ASCII, as bytes).

Each rule is a fact about the source a reviewer would otherwise have to
re-check by hand on every change.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "config", "tenants", "security", "gateway", "services", "policy", "vault")
RESEARCH_APPS = ("studies", "participants", "consents", "observations", "exports", "accounting")
# What writes to the database (or locks for a write) when called on a model, manager or queryset.
WRITES = frozenset(
    {"save", "create", "delete", "update", "get_or_create", "update_or_create", "bulk_create", "bulk_update"}
)
WRITES_OR_LOCKS = WRITES | {"select_for_update", "atomic"}


def production_modules() -> list[Path]:
    return sorted(
        path for package in PACKAGES for path in (ROOT / package).rglob("*.py") if "migrations" not in path.parts
    )


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def literal_codes(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                    found.append(f"{shown(path)}:{node.lineno} code={keyword.value.value!r}")
    return found


def test_no_error_code_is_a_string_literal_outside_the_enums() -> None:
    literals = [found for path in production_modules() for found in literal_codes(path)]

    assert literals == []


def digest_comparisons(path: Path) -> list[str]:
    """Calls of ``hmac.compare_digest``: on two ``str`` it raises TypeError for any non-ASCII character."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr == "compare_digest":
            found.append(f"{shown(path)}:{node.lineno} .compare_digest")
        elif isinstance(node, ast.ImportFrom) and any(alias.name == "compare_digest" for alias in node.names):
            found.append(f"{shown(path)}:{node.lineno} import compare_digest")
    return found


def test_secrets_a_client_sent_are_compared_only_through_core_comparison() -> None:
    allowed = ROOT / "core" / "comparison.py"
    found = [hit for path in production_modules() if path != allowed for hit in digest_comparisons(path)]

    assert found == []


def test_the_comparison_check_sees_compare_digest(tmp_path: Path) -> None:
    module = tmp_path / "mfa.py"
    module.write_text("import hmac\nok = hmac.compare_digest(expected, code)\n", encoding="utf-8")

    assert digest_comparisons(module) == ["mfa.py:2 .compare_digest"]


def database_writes(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES_OR_LOCKS:
            found.append(f"{shown(path)}:{node.lineno} .{node.func.attr}()")
    return found


@pytest.mark.parametrize("app", list(RESEARCH_APPS))
def test_a_research_view_never_writes_or_locks_itself(app: str) -> None:
    assert database_writes(ROOT / "services" / app / "apis.py") == []


def test_the_write_check_sees_a_write_in_a_view(tmp_path: Path) -> None:
    view = tmp_path / "apis.py"
    view.write_text(
        "def post(request):\n    Consent.objects.create(participant=request.participant)\n", encoding="utf-8"
    )

    assert database_writes(view) == ["apis.py:2 .create()"]


def test_the_code_check_sees_a_literal_code(tmp_path: Path) -> None:
    module = tmp_path / "errors.py"
    module.write_text('raise NotFound("No such study.", code="not_found")\n', encoding="utf-8")

    assert literal_codes(module) == ["errors.py:1 code='not_found'"]


@pytest.mark.parametrize("app", list(RESEARCH_APPS))
def test_every_research_app_has_actions_and_selectors(app: str) -> None:
    assert (ROOT / "services" / app / "actions.py").is_file()
    assert (ROOT / "services" / app / "selectors.py").is_file()
