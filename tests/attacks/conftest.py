"""The standing attack suite: each finding of the security review is one test, named after what the attacker tries.

Every test here failed against the code the review read (commit 66b2a3c) and
passes since the fix. They run with the whole suite, and on their own with
``make attack-suite`` (``pytest -m attack``). A file per kind of attacker goal;
each test's docstring names the finding it answers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services.conftest import ada, coordinator, pi, researcher, study

__all__ = ["ada", "coordinator", "pi", "researcher", "study"]

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder ``attack``, so the suite can run on its own."""
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.attack)
