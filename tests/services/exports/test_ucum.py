"""Units: only short UCUM units built from well-known atoms pass."""

from __future__ import annotations

import pytest

from services.exports.ucum import is_ucum_unit


@pytest.mark.parametrize(
    "unit", ["mg/dL", "mmol/L", "10*9/L", "/min", "%", "mm[Hg]", "kg/m2", "mL/min/{1.73_m2}", "[IU]/L", "ug/mL"]
)
def test_ucum_units_pass(unit: str) -> None:
    assert is_ucum_unit(unit)


@pytest.mark.parametrize(
    "unit", ["", "Smith", "mg per dL", "mg/{Ada.Lovelace}", "ada@example.org", "mg/dL/mg/dL/mg/dL/mg/dL", "m g"]
)
def test_anything_but_a_short_ucum_unit_is_dropped(unit: str) -> None:
    assert not is_ucum_unit(unit)
