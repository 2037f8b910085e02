"""``mean``: the mean over the averaging period ``window_s`` (energy mean for Leq noise), judged only
once the window holds ``min_coverage`` of the readings the station's interval promises."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rules.kinds.base import Evidence, Kind, compare_limit

if TYPE_CHECKING:
    from rules.rulepack import Rule


def window_mean(rule: Rule, ev: Evidence) -> float | None:
    if ev.series is None:
        return None
    window_ms = int(rule.window_s * 1000)
    expected = window_ms / (ev.interval_s * 1000)
    if ev.series.count(ev.ts_ms, window_ms) < rule.min_coverage * expected:
        return None  # not enough data for this averaging period yet
    return ev.series.mean(ev.ts_ms, window_ms, energy=rule.mean == "energy")


KIND = Kind("mean", needs=("op", "limit", "window_s"), measure=window_mean, judge=compare_limit, history=True)
