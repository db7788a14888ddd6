"""Units an export may carry: a conservative subset of UCUM (the Unified Code for Units of Measure).

Not a HIPAA rule: a unit that is not short and built from well-known atoms
might be free text typed where a unit belongs, so Safe Harbor
(:mod:`services.exports.safe_harbor`) exports the observation without it.
"""

from __future__ import annotations

import re

MAX_UNIT_LENGTH = 20

_UCUM_PREFIXES = frozenset("kcmunpfMGTd")
_UCUM_METRIC = frozenset(
    {"g", "m", "l", "L", "s", "mol", "eq", "U", "[IU]", "[iU]", "Pa", "kat", "osm", "Hz", "N", "J", "W", "V", "A"}
    | {"Ohm", "cal", "bar", "Cel"}
)
_UCUM_OTHER = frozenset(
    {"min", "h", "d", "wk", "mo", "a", "%", "[degF]", "K", "mm[Hg]", "cm[H2O]", "[in_i]", "[ft_i]", "[lb_av]"}
    | {"[oz_av]", "[pH]", "[ppm]", "[ppb]", "[arb'U]", "[CFU]", "[HPF]", "[LPF]", "[drp]", "1"}
)
_UCUM_ANNOTATIONS = frozenset({"{1.73_m2}", "{beats}", "{breaths}", "{cells}", "{copies}", "{score}", "{ratio}"})
_UCUM_FACTOR = re.compile(r"10[*^][+-]?\d{1,2}|\d{1,4}")
_UCUM_COMPONENT = re.compile(r"(.+?)([+-]?\d{1,2})?")


def _ucum_atom(atom: str) -> bool:
    if atom in _UCUM_METRIC or atom in _UCUM_OTHER:
        return True
    return len(atom) > 1 and atom[0] in _UCUM_PREFIXES and atom[1:] in _UCUM_METRIC


def _ucum_component(component: str) -> bool:
    if component in _UCUM_ANNOTATIONS or _UCUM_FACTOR.fullmatch(component):
        return True
    match = _UCUM_COMPONENT.fullmatch(component)
    return match is not None and _ucum_atom(match.group(1))


def is_ucum_unit(unit: str) -> bool:
    """Whether ``unit`` is a short UCUM unit built from well-known atoms (``mg/dL``, ``10*9/L``, ``/min``)."""
    if not unit or len(unit) > MAX_UNIT_LENGTH:
        return False
    components = re.split(r"[./](?![^{]*\})", unit)  # not at a dot inside an annotation
    if unit.startswith("/"):
        components = components[1:]  # a leading "/" means "per"
    return all(component and _ucum_component(component) for component in components)
