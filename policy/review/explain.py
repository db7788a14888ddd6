"""Explain one decision: evaluate it, and every rule of the policy that fed it, for one input document."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import regopy

from policy.source import PolicySource

_FUNCTION_RE = re.compile(r"^(?!default\b)([a-z_]\w*)\(inp\)", re.MULTILINE)
_DEFAULT_RE = re.compile(r"^default\s+([a-z_]\w*)\(_\)\s*:=\s*(.+)$", re.MULTILINE)
_DENIAL_RE = re.compile(r'^denied_for\("(\w+)", inp\)', re.MULTILINE)


@dataclass(frozen=True)
class Explanation:
    """A decision and the value of every rule that fed it."""

    decision: Any
    facts: dict[str, Any]
    denials: dict[str, bool]


def explain(source: PolicySource, document: dict[str, Any], package: str = "gateway.authz") -> Explanation:
    """Evaluate the decision and each rule of ``package`` for ``document``."""
    interpreter = regopy.Interpreter()
    for name, text in source.modules.items():
        interpreter.add_module(name, text)
    interpreter.add_data_json(source.data_json)
    interpreter.set_input_term(json.dumps(document))
    text = "\n".join(source.modules.values())
    # A direct query of a function whose default applies can come back undefined: show the default.
    defaults = {name: json.loads(value) for name, value in _DEFAULT_RE.findall(text)}
    facts = {
        name: _value(interpreter, f"data.{package}.{name}(input)", default=defaults.get(name))
        for name in dict.fromkeys(_FUNCTION_RE.findall(text))
    }
    denials = {
        reason: _value(interpreter, f'data.{package}.denied_for("{reason}", input)') is True
        for reason in dict.fromkeys(_DENIAL_RE.findall(text))
    }
    facts.pop("evaluate", None)
    return Explanation(decision=_value(interpreter, f"data.{package}.decision"), facts=facts, denials=denials)


def _value(interpreter: regopy.Interpreter, query: str, default: Any = None) -> Any:
    output = str(interpreter.query(query))
    if output == "undefined" or not output.startswith("{"):
        return default
    expressions = json.loads(output).get("expressions", [])
    return expressions[0] if expressions else None
