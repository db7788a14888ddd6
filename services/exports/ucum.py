r"""Units an export may carry: a conservative subset of UCUM (the Unified Code for Units of Measure).

Not a HIPAA rule on its own: a unit is typed by hand, so anything that is not
a short unit built from well-known atoms might be free text or an identifier
typed where a unit belongs, and Safe Harbor (:mod:`services.exports.safe_harbor`)
exports the observation without it.

The grammar is narrower than UCUM's on purpose, because a unit must not be
able to carry digits of its own:

- a number stands only as a power of ten (``10*9``, ``10^3``), at most once
  in a unit; a bare number (``1000``, ``12``), which would let a date
  (``01/05/2024``), a telephone number (``555.123.4567``) or a social security
  number (``123.45.6789``) through, never does;
- an atom's exponent is a single digit from 1 to 4, optionally signed
  (``m2``, ``s-1``), as real units need;
- ``1`` (a plain ratio) only as the whole unit;
- at most four components, and twenty characters in all.

Every digit class is ASCII (``[0-9]``): Python's ``\d`` also matches other
scripts' digits (full-width ones, say), which are no unit at all.
"""

from __future__ import annotations

import re

MAX_UNIT_LENGTH = 20
MAX_COMPONENTS = 4

_UCUM_PREFIXES = frozenset("kcmunpfMGTd")
_UCUM_METRIC = frozenset(
    {"g", "m", "l", "L", "s", "mol", "eq", "U", "[IU]", "[iU]", "Pa", "kat", "osm", "Hz", "N", "J", "W", "V", "A"}
    | {"Ohm", "cal", "bar", "Cel"}
)
_UCUM_OTHER = frozenset(
    {"min", "h", "d", "wk", "mo", "a", "%", "[degF]", "K", "mm[Hg]", "cm[H2O]", "[in_i]", "[ft_i]", "[lb_av]"}
    | {"[oz_av]", "[pH]", "[ppm]", "[ppb]", "[arb'U]", "[CFU]", "[HPF]", "[LPF]", "[drp]"}
)
UNITY = "1"  # the unit of a plain ratio, only ever the whole unit ("1.1.1.1" would be digits again)
_UCUM_ANNOTATIONS = frozenset({"{1.73_m2}", "{beats}", "{breaths}", "{cells}", "{copies}", "{score}", "{ratio}"})
_UCUM_FACTOR = re.compile(r"10[*^][+-]?[0-9]{1,2}", re.ASCII)
_UCUM_COMPONENT = re.compile(r"(.+?)([+-]?[1-4])?", re.ASCII)


def _ucum_atom(atom: str) -> bool:
    if atom in _UCUM_METRIC or atom in _UCUM_OTHER:
        return True
    return len(atom) > 1 and atom[0] in _UCUM_PREFIXES and atom[1:] in _UCUM_METRIC


def _ucum_component(component: str) -> bool:
    if component in _UCUM_ANNOTATIONS:
        return True
    match = _UCUM_COMPONENT.fullmatch(component)
    return match is not None and _ucum_atom(match.group(1))


def is_ucum_unit(unit: str) -> bool:
    """Whether ``unit`` is a short UCUM unit built from well-known atoms (``mg/dL``, ``10*9/L``, ``/min``)."""
    if unit == UNITY:
        return True
    if not unit or len(unit) > MAX_UNIT_LENGTH or not unit.isascii():
        return False
    components = re.split(r"[./](?![^{]*\})", unit)  # not at a dot inside an annotation
    if unit.startswith("/"):
        components = components[1:]  # a leading "/" means "per"
    factors = [component for component in components if _UCUM_FACTOR.fullmatch(component)]
    if len(components) > MAX_COMPONENTS or len(factors) > 1:
        return False
    return all(component and (component in factors or _ucum_component(component)) for component in components)
