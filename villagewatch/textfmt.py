"""Numbers, units and ranges as a reader sees them: Vietnamese first, English second.

Every text that reaches a person (notifications, report pages, CSV headers in Vietnamese, portal
pages) formats numbers here, so the rules are the same everywhere:

- Vietnamese writes a decimal comma and a thousands dot ("1.234,5"); English the reverse ("1,234.5").
- Rounding is half-up (144,5 h → 145; 7,5 → 8), as a reader rounds by hand, never Python's
  round-half-to-even. Values are rounded through ``Decimal`` so 2.675 with 2 decimals is 2,68.
- Trailing zeros after the decimal sign are dropped unless ``fixed=True``; -0 is shown as 0.
- A value always carries its unit when it has one ("0,2 mg/L", "95,6 %", "1,9 m"); a dimensionless
  quantity (pH) has none.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

DASH = "—"
# units written without a space before them
_TIGHT_UNITS = {"‰", "°"}


def round_half_up(value: float, decimals: int = 0) -> Decimal:
    """``value`` rounded half away from zero at ``decimals`` places, as a Decimal (exact)."""
    quantum = Decimal(1).scaleb(-decimals)
    # repr() of a float is the shortest string that round-trips: 2.675 → "2.675", not 2.67499…
    return Decimal(repr(float(value))).quantize(quantum, rounding=ROUND_HALF_UP)


def number(value: float | int | None, decimals: int = 2, lang: str = "vi", *, fixed: bool = False,
           grouping: bool = True) -> str:
    """``1234.5`` → ``"1.234,5"`` (vi) or ``"1,234.5"`` (en); ``None`` or non-finite → "—"."""
    if value is None:
        return DASH
    try:
        if not math.isfinite(float(value)):
            return DASH
        d = round_half_up(float(value), max(0, decimals))
    except (InvalidOperation, ValueError, OverflowError):
        return DASH
    text = f"{d:,.{max(0, decimals)}f}" if grouping else f"{d:.{max(0, decimals)}f}"
    if not fixed and "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", "", "-"):
        text = "0"
    if lang == "vi":
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text


def with_unit(text: str, unit: str | None) -> str:
    """Join a formatted number and its unit: "0,2 mg/L", "4‰", "pH" metrics stay bare."""
    if not unit or text == DASH:
        return text
    return f"{text}{unit}" if unit in _TIGHT_UNITS else f"{text} {unit}"


def quantity(value: float | int | None, unit: str | None, decimals: int = 2, lang: str = "vi", *,
             fixed: bool = False) -> str:
    """A value with its unit: ``quantity(0.2, "mg/L")`` → ``"0,2 mg/L"``."""
    return with_unit(number(value, decimals, lang, fixed=fixed), unit)


def span(lo: float | None, hi: float | None, unit: str | None, decimals: int = 2, lang: str = "vi") -> str:
    """A range with its unit once: ``"0,2–1 mg/L"`` (vi), ``"0.2–1 mg/L"`` (en)."""
    return with_unit(f"{number(lo, decimals, lang)}–{number(hi, decimals, lang)}", unit)


def percent(value: float | None, decimals: int = 1, lang: str = "vi") -> str:
    """A share already in percent: ``percent(95.64)`` → ``"95,6 %"``."""
    return with_unit(number(value, decimals, lang), "%")
