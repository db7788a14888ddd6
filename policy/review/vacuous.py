"""Rego that an engine passes without checking anything: ``not`` inside an ``every`` body.

regopy 1.5.2 (rego-cpp) holds ``every c in ["abc"] { not c == "abc" }`` true,
where OPA and regorus leave it undefined: a negation that reads the loop
variable or a local is taken as true in every iteration. A test written that way
passes under the embedded engine whatever the policy decides. ``policy_test``
therefore refuses a ``not`` anywhere inside an ``every`` body, in policies and in
tests, under every engine: write ``x == false`` (rego-cpp evaluates that
correctly) or ``count([... | ...; cond]) == 0`` instead. The canary query
(:data:`CANARY_QUERY`) is asked of each engine and its answer reported, so a
release that fixes (or brings) the fault shows in the output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import ModuleType

import regopy

from policy.source import PolicySource

# True under an engine with the fault, undefined under OPA and regorus.
CANARY_MODULE = 'package canary\n\nimport rego.v1\n\nvacuous if {\n\tevery c in ["a"] {\n\t\tnot c == "a"\n\t}\n}\n'
CANARY_QUERY = "data.canary.vacuous"
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
_WORD_RE = re.compile(r"[A-Za-z_]\w*|\S")
_OPENING, _CLOSING = frozenset("{[("), frozenset("}])")


@dataclass(frozen=True)
class Negation:
    """One ``not`` inside an ``every`` body."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: `not` inside an `every` body (vacuous under regopy; write `... == false`)"


def _lexemes(text: str) -> list[tuple[int, str]]:
    """(line, lexeme) of the Rego text, string literals and comments left out."""
    found: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        code = _STRING_RE.sub('""', line).split("#", 1)[0]
        found.extend((number, lexeme) for lexeme in _WORD_RE.findall(code))
        found.append((number, "\n"))
    return found


def negations_in_every(name: str, text: str) -> list[Negation]:
    """Every ``not`` that starts an expression inside an ``every`` body of one file.

    The body is the ``{`` met at the nesting level of its ``every``: braces of
    objects in the domain (``every d in [{...}] {``) do not open it.
    """
    found: list[Negation] = []
    depth, bodies, pending, previous = 0, [], None, "\n"
    for number, lexeme in _lexemes(text):
        if lexeme == "every":
            pending = depth
        elif lexeme in _OPENING:
            if lexeme == "{" and pending == depth:
                bodies.append(depth)
                pending = None
            depth += 1
        elif lexeme in _CLOSING:
            depth -= 1
            if bodies and bodies[-1] == depth:
                bodies.pop()
        elif lexeme == "not" and bodies and previous in {"\n", "{", ";"}:
            found.append(Negation(name, number))
        previous = lexeme
    return found


def negations(source: PolicySource) -> list[Negation]:
    """The negations inside ``every`` bodies of a policy directory's modules and tests."""
    files = {**source.modules, **source.tests}
    return [negation for name, text in files.items() for negation in negations_in_every(name, text)]


def canary_regopy() -> bool:
    """Whether the embedded engine holds the canary true (regopy 1.5.2 does)."""
    interpreter = regopy.Interpreter()
    interpreter.add_module("canary.rego", CANARY_MODULE)
    return str(interpreter.query(CANARY_QUERY)).startswith('{"expressions":[true]')


def canary_regorus(module: ModuleType) -> bool:
    """Whether regorus holds the canary true (0.13.0 does not: undefined)."""
    engine = module.Engine()
    engine.add_policy("canary.rego", CANARY_MODULE)
    results = engine.eval_query(CANARY_QUERY).get("result", [])
    return bool(results) and results[0]["expressions"][0]["value"] is True
