"""Every action name the audit log can hold, collected from where the code names them (there is no one list).

An event's ``action`` comes from one of three places, and each is read here:

- a policy-guarded view's ``policy_actions`` (the middleware records the request under it), on either URLconf;
- the policy data's matrix (``policy/rego/data.json``): every action a role is granted or the data names;
- the source itself: every literal ``<resource>.<verb>`` of the project's packages (not tests, not migrations)
  whose resource part is one of the above or is passed as ``action=``, which catches the actions, lifecycle steps
  and refusals that record an event of their own (``record(action="community.key_rotate")``,
  ``"user.reactivate" if ... else "user.deactivate"``); an f-string such as ``f"community.{status}"`` gives a
  pattern (``community.*``) that at least one recorded event must match.

A new action named in any of these ways is in :func:`recorded_actions` the moment it is written, so the FHIR test,
which exports one event of every action it returns, covers it without anyone adding it to a list.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from policy.matrix import policy_matrix
from policy.routes import walk
from policy.views import PolicyView

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "core", "gateway", "operations", "policy", "security", "services", "tenants", "vault")
URLCONFS = ("config.urls_tenant", "config.urls_public")
ACTION = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")
PATTERN = re.compile(r"[a-z][a-z0-9_]*\.")
# Functions that take the action first: the lifecycle's platform event, the accounting's event.
ACTION_FIRST = frozenset({"_platform_event", "_event"})
# Dotted literals of an action's shape that are not actions.
NOT_ACTIONS = {"audit.jsonl": "the file name of an archive's export"}


@dataclass(frozen=True)
class Actions:
    """The action names, and the patterns (``community.*``) of those the code builds from a variable."""

    names: frozenset[str]
    patterns: frozenset[str]

    def matches(self, action: str) -> bool:
        """Whether ``action`` is one of the names, or of a pattern's."""
        return action in self.names or any(fnmatch.fnmatchcase(action, pattern) for pattern in self.patterns)


def _view_actions() -> Iterator[str]:
    for urlconf in URLCONFS:
        for route in walk(urlconf):
            view_class = getattr(route.view, "view_class", None) or getattr(route.view, "cls", None)
            if isinstance(view_class, type) and issubclass(view_class, PolicyView):
                yield from view_class.policy_actions.values()


def _matrix_actions() -> Iterator[str]:
    matrix = policy_matrix()
    for granted in matrix.roles.values():
        yield from granted
    yield from matrix.phi_actions


def _sources() -> Iterator[ast.AST]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _action_argument(node: ast.Call) -> ast.expr | None:
    """What a call passes as ``action=`` (or first, to a function of :data:`ACTION_FIRST`)."""
    for keyword in node.keywords:
        if keyword.arg == "action":
            return keyword.value
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    return node.args[0] if name in ACTION_FIRST and node.args else None


def _action_literal(node: ast.AST | None) -> str | None:
    """The node's text when it is a literal of an action's shape."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and ACTION.fullmatch(node.value):
        return node.value
    return None


def _action_pattern(node: ast.AST | None) -> str | None:
    """``community.*`` for an f-string ``f"community.{status}"``."""
    head = node.values[0] if isinstance(node, ast.JoinedStr) and node.values else None
    if isinstance(head, ast.Constant) and isinstance(head.value, str) and PATTERN.fullmatch(head.value):
        return f"{head.value}*"
    return None


def _named_in_source() -> tuple[set[str], set[str], set[str]]:
    """Literals passed as ``action=``, every literal of an action's shape, and the patterns of f-strings passed."""
    passed: set[str] = set()
    literals: set[str] = set()
    patterns: set[str] = set()
    for tree in _sources():
        for node in ast.walk(tree):
            literals.update(filter(None, [_action_literal(node)]))
            argument = _action_argument(node) if isinstance(node, ast.Call) else None
            passed.update(filter(None, [_action_literal(argument)]))
            patterns.update(filter(None, [_action_pattern(argument)]))
    return passed, literals, patterns


@cache
def recorded_actions() -> Actions:
    """Every action the log can hold (see the module's docstring for where each comes from)."""
    declared = set(_view_actions()) | set(_matrix_actions())
    passed, literals, patterns = _named_in_source()
    resources = {name.split(".", 1)[0] for name in declared | passed} | {pattern[:-2] for pattern in patterns}
    named = {literal for literal in literals if literal.split(".", 1)[0] in resources} - NOT_ACTIONS.keys()
    return Actions(names=frozenset(declared | passed | named), patterns=frozenset(patterns))
