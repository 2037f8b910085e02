"""The limits a report measures against, as the report needs them.

The limits themselves live in the alert rule packs (rules/rulepack.py, one loader for alerts,
dashboards and reports); this module only adapts a rule to what compliance needs: which metric,
which side, which averaging window, which regulation. No limit value is written here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from rules.labels import pick_lang
from villagewatch.textfmt import number, with_unit


@dataclass(frozen=True)
class Limit:
    rule_id: str
    metric: str
    lo: float | None  # compliant when value >= lo
    hi: float | None  # compliant when value <= hi
    window_s: int  # averaging period; 0 = every reading is judged on its own
    regulation: str  # e.g. "QCVN 05:2023/BTNMT"; operational guidance names itself so
    table: str = ""
    column: str = ""
    unverified: bool = False  # value marked "(check)" in the reference: flagged in the report
    averaging: str = ""  # as written in the pack, "vi / en"
    hours: tuple[int, int] | None = None  # local minutes of day [from, to) the limit applies (noise)
    energy_mean: bool = False  # window mean of a level in dB is the energy mean (Leq), not arithmetic
    min_coverage: float = 0.75  # share of a window's expected readings needed to judge it
    severity: str = "warning"
    duration_s: float = 0  # the alert rule wants the condition held this long
    unverified_note: str = ""
    pack: str = ""
    # the rule pack's comparison, read as written: "above" (>), "at_or_above" (≥), "below" (<),
    # "at_or_below" (≤); "band" = outside [lo, hi] (strictly below lo or strictly above hi)
    op: str = "band"
    hysteresis: float = 0.0
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    unit: str = ""
    rule: Any = field(default=None, hash=False, compare=False)  # the rules.rulepack.Rule it came from
    variant: str | None = None  # e.g. gauge "cao-lanh", noise area "special": shown by its name

    @property
    def hi_inclusive(self) -> bool:
        """The limit is reached *at* hi (alarm levels: "at or above")."""
        return self.op == "at_or_above"

    @property
    def lo_inclusive(self) -> bool:
        return self.op == "at_or_below"

    def violated(self, value: float) -> bool:
        if self.rule is not None:
            return bool(self.rule.breached_by(value))  # THE comparison (rules/rulepack.py)
        # a Limit written by hand (tests, the limits table of an old report): the same reading of op
        if self.hi is not None and (value > self.hi or (self.hi_inclusive and value == self.hi)):
            return True
        return self.lo is not None and (value < self.lo or (self.lo_inclusive and value == self.lo))

    def in_force(self, day: dt.date) -> bool:
        return (self.valid_from is None or day >= self.valid_from) and (
            self.valid_until is None or day < self.valid_until)

    def column_text(self, lang: str) -> str:
        from reports.texts import VARIANT_LABELS, variant_label
        text = pick_lang(self.column, lang)
        if self.variant in VARIANT_LABELS:
            text = text.replace(self.variant, variant_label(self.variant, lang))
        return text

    def averaging_text(self, lang: str) -> str:
        return pick_lang(self.averaging, lang)

    def describe(self, lang: str = "vi", unit: bool = True) -> str:
        """What is allowed, with the unit: "≤ 50 µg/m³", "≥ 3 mg/L", "6–8,5", "< 1,9 m" (alarm at ≥)."""
        u = self.unit if unit else ""
        if self.lo is not None and self.hi is not None:
            return with_unit(f"{number(self.lo, 3, lang)}–{number(self.hi, 3, lang)}", u)
        if self.hi is not None:
            return ("< " if self.hi_inclusive else "≤ ") + with_unit(number(self.hi, 3, lang), u)
        if self.lo is not None:
            return ("> " if self.lo_inclusive else "≥ ") + with_unit(number(self.lo, 3, lang), u)
        return "—"

    @property
    def bound(self) -> float | None:
        """The single bound of a one-sided limit (None for a band)."""
        if self.lo is not None and self.hi is not None:
            return None
        return self.hi if self.hi is not None else self.lo

    def applies_at(self, minute_of_day: int) -> bool:
        if self.hours is None:
            return True
        start, end = self.hours
        return start <= minute_of_day < end if start < end else (minute_of_day >= start or minute_of_day < end)

    def hours_text(self) -> str:
        if self.hours is None:
            return ""
        return "{:02d}:{:02d}–{:02d}:{:02d}".format(*divmod(self.hours[0], 60), *divmod(self.hours[1], 60))


@dataclass(frozen=True)
class PackVersion:
    """A rule pack and the regulation version it encodes, printed on the report's first page."""

    pack: str
    regulation: str
    title_vi: str
    title_en: str
    source: str
    digest: str  # first 12 hex digits of the pack file's SHA-256: which edition of the data was used
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    replaced_by: str = ""
    has_unverified: bool = False

    def in_force_on(self, day: dt.date) -> bool:
        return (self.valid_from is None or day >= self.valid_from) and (
            self.valid_until is None or day < self.valid_until)
