"""The limits a report measures against, as the report needs them.

The limits themselves live in the alert rule packs (rules/rulepack.py, one loader for alerts,
dashboards and reports); this module only adapts a rule to what compliance needs: which metric,
which side, which averaging window, which regulation. No limit value is written here.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    def column_text(self, lang: str) -> str:
        return pick_lang(self.column, lang)

    def averaging_text(self, lang: str) -> str:
        return pick_lang(self.averaging, lang)

    def describe(self) -> str:
        """The limit as an inequality, e.g. "≤ 50", "≥ 3", "6–8.5"."""
        if self.lo is not None and self.hi is not None:
            return f"{_num(self.lo)}–{_num(self.hi)}"
        if self.hi is not None:
            return f"≤ {_num(self.hi)}"
        if self.lo is not None:
            return f"≥ {_num(self.lo)}"
        return "—"

    def applies_at(self, minute_of_day: int) -> bool:
        if self.hours is None:
            return True
        start, end = self.hours
        return start <= minute_of_day < end if start < end else (minute_of_day >= start or minute_of_day < end)

    def hours_text(self) -> str:
        if self.hours is None:
            return ""
        return "{:02d}:{:02d}–{:02d}:{:02d}".format(*divmod(self.hours[0], 60), *divmod(self.hours[1], 60))


def pick_lang(text: str, lang: str) -> str:
    """Rule packs write bilingual texts as "tiếng Việt / English": keep the requested half."""
    if " / " not in text:
        return text
    vi, en = text.split(" / ", 1)
    return vi if lang == "vi" else en


def _num(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class PackVersion:
    """A rule pack and the regulation version it encodes, printed on the report's first page."""

    pack: str
    regulation: str
    title_vi: str
    title_en: str
    source: str
    digest: str  # first 12 hex digits of the pack file's SHA-256: which edition of the data was used
