"""Number formatting for readers: decimal comma in Vietnamese, half-up rounding, units."""

from __future__ import annotations

import math
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from villagewatch import textfmt


def test_vietnamese_decimal_comma_and_thousands_dot():
    assert textfmt.number(1234.5, 1, "vi") == "1.234,5"
    assert textfmt.number(1234.5, 1, "en") == "1,234.5"


def test_half_up_not_half_even():
    assert textfmt.number(144.5, 0, "vi") == "145"
    assert textfmt.number(7.5, 0, "vi") == "8"
    assert textfmt.number(2.675, 2, "en") == "2.68"
    assert textfmt.number(-0.5, 0, "en") == "-1"


def test_units_ranges_and_missing_values():
    assert textfmt.quantity(0.2, "mg/L") == "0,2 mg/L"
    assert textfmt.quantity(4, "‰") == "4‰"
    assert textfmt.quantity(7.25, "", 1) == "7,3"
    assert textfmt.span(0.2, 1.0, "mg/L") == "0,2–1 mg/L"
    assert textfmt.span(0.2, 1.0, "mg/L", lang="en") == "0.2–1 mg/L"
    assert textfmt.percent(95.64) == "95,6 %"
    assert textfmt.number(None) == textfmt.DASH
    assert textfmt.number(float("nan")) == textfmt.DASH
    assert textfmt.number(-0.0001, 2) == "0"
    assert textfmt.number(1.5, 2, fixed=True) == "1,50"


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
       st.integers(0, 4))
def test_vietnamese_text_parses_back_to_the_half_up_value(value, decimals):
    vi = textfmt.number(value, decimals, "vi")
    en = textfmt.number(value, decimals, "en")
    assert "." not in vi.split(",")[-1] or "," not in vi  # no decimal point after a decimal comma
    back = Decimal(vi.replace(".", "").replace(",", "."))
    assert back == Decimal(en.replace(",", ""))
    expected = textfmt.round_half_up(value, decimals)
    assert back == expected or (back == 0 and expected == 0)
    assert math.isclose(float(back), value, abs_tol=0.5 * 10 ** -decimals + 1e-9 * abs(value))
