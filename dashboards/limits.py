"""Limits drawn on panels, taken from the same rule packs the alert engine evaluates.

No limit value is written here: every line comes from ``rules.rulepack`` (and VN_AQI band
colours from ``rules.aqi``). Rules that are not a level on the metric's own axis (rates, AQI
index values, staleness, flatlines) are not drawn.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from dashboards.grafana import GREEN, ORANGE, RED, YELLOW, thresholds
from rules.kinds.base import ALLOWED_SIGN, is_minimum
from rules.labels import pick_lang, with_variant
from rules.rulepack import Rule, RuleSet, load_rule_packs
from villagewatch import contract
from villagewatch.sites import Station
from villagewatch.textfmt import quantity, span

SEVERITY_COLOR = {"info": YELLOW, "warning": ORANGE, "critical": RED}
_DRAWN_KINDS = ("threshold", "band", "mean")


@dataclass(frozen=True)
class Bound:
    value: float
    side: str  # "above": values above are bad; "below": values below are bad
    severity: str
    rule: Rule


class Limits:
    def __init__(self, rules: RuleSet | None = None, at_ms: int | None = None):
        self.rules = rules or load_rule_packs()
        # limits in force today (e.g. QCVN 05 PM2.5 24 h: 50 until 2026, then 45): rebuild
        # the dashboards when a rule's validity date passes
        self.at_ms = at_ms if at_ms is not None else int(time.time() * 1000)

    def rules_for(self, station: Station, metric: str) -> list[Rule]:
        return [r for r in self.rules.rules_for(station, at_ms=self.at_ms)
                if r.metric == metric and r.kind in _DRAWN_KINDS]

    def bounds(self, station: Station, metric: str) -> list[Bound]:
        out: dict[tuple[float, str], Bound] = {}
        for r in self.rules_for(station, metric):
            side = "below" if is_minimum(r.op) else "above"  # at_or_above is a maximum too
            pairs = [(r.lo, "below"), (r.hi, "above")] if r.kind == "band" else [(r.limit, side)]
            for value, side in pairs:
                if value is None:
                    continue
                b = Bound(float(value), side, r.severity, r)
                old = out.get((b.value, side))
                if old is None or r.severity_rank > old.rule.severity_rank:
                    out[(b.value, side)] = b
        return sorted(out.values(), key=lambda b: b.value)

    def thresholds(self, station: Station, metric: str) -> dict[str, Any] | None:
        return thresholds_from(self.bounds(station, metric))

    def describe(self, station: Station, metric: str, lang: str) -> str:
        """One line per rule, in the reader's words: regulation, table, column (variant ids replaced
        by their names), the level with its unit and decimal comma ("0,2–1 mg/L", "≥ 3 mg/L"; a flood
        alarm level as "Báo động I, trạm Cao Lãnh: 1,9 m"), and the averaging period."""
        unit = contract.METRICS[metric].unit
        lines = []
        for r in self.rules_for(station, metric):
            if r.kind == "band":
                level = span(r.lo, r.hi, unit, 3, lang)
            elif metric == "level":
                level = quantity(r.limit, unit, 3, lang)  # an alarm level is a level, not a limit
            else:
                level = f"{ALLOWED_SIGN[r.op or 'above']} {quantity(r.limit, unit, 3, lang)}"
            parts = [pick_lang(r.regulation, lang), pick_lang(r.table, lang), with_variant(r.column, r.variant, lang)]
            text = ", ".join(p for p in parts if p and p != "—") + f": {level}"
            averaging = pick_lang(r.averaging, lang)
            if averaging and averaging != "—":
                text += f" ({averaging})"
            if r.unverified:
                text += " — " + ("chưa kiểm chứng" if lang == "vi" else "unverified")
            lines.append(text.strip())
        return "\n".join(dict.fromkeys(lines))


def thresholds_from(bounds: list[Bound]) -> dict[str, Any] | None:
    """Grafana threshold steps: below-bounds colour the values under them, above-bounds over them."""
    if not bounds:
        return None
    below = [b for b in bounds if b.side == "below"]
    above = [b for b in bounds if b.side == "above"]
    steps: list[tuple[float, str]] = []
    base = SEVERITY_COLOR[below[0].severity] if below else GREEN
    for i, b in enumerate(below):
        nxt = below[i + 1] if i + 1 < len(below) else None
        steps.append((b.value, SEVERITY_COLOR[nxt.severity] if nxt else GREEN))
    steps.extend((b.value, SEVERITY_COLOR[b.severity]) for b in above)
    return thresholds(base, steps)

