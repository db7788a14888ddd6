"""Units: only short UCUM units built from well-known atoms pass."""

from __future__ import annotations

import pytest

from services.exports.ucum import is_ucum_unit


@pytest.mark.parametrize(
    "unit",
    [
        *("mg/dL", "mmol/L", "10*9/L", "10^3/uL", "/min", "%", "mm[Hg]", "kg/m2"),
        *("mL/min/{1.73_m2}", "[IU]/L", "ug/mL", "s-1", "1"),
    ],
)
def test_ucum_units_pass(unit: str) -> None:
    assert is_ucum_unit(unit)


@pytest.mark.parametrize(
    "unit", ["", "Smith", "mg per dL", "mg/{Ada.Lovelace}", "ada@example.org", "mg/dL/mg/dL/mg/dL/mg/dL", "m g"]
)
def test_anything_but_a_short_ucum_unit_is_dropped(unit: str) -> None:
    assert not is_ucum_unit(unit)


@pytest.mark.parametrize(
    "unit",
    [
        "01/05/2024",
        "1/5/2024",
        "2024.01.05",
        "12.5.24",
        "1955/3/12",
        "555.123.4567",
        "123.45.6789",
        "1000",
        "g12.g34.g56",
        "10*3/10*4",
        "m5",
        "\uff18/L",
        "1.1.1.1",  # an IP address of ones, found by the property test
        "1/1",
    ],
)
def test_leak_digits_in_a_unit_carry_no_date_phone_or_ssn(unit: str) -> None:
    """Review 1.2/1.3: any 1-4 digit group passed as a UCUM factor, so dates, phones and SSNs rode in units."""
    assert not is_ucum_unit(unit)
