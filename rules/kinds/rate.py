"""``rate``: change per hour between the first and last reading of ``window_s`` (DO falling fast);
needs readings spanning at least half the window."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rules.kinds.base import Evidence, Kind, compare_limit

if TYPE_CHECKING:
    from rules.rulepack import Rule


def change_per_hour(rule: Rule, ev: Evidence) -> float | None:
    if ev.series is None:
        return None
    window_ms = int(rule.window_s * 1000)
    ends = ev.series.ends(ev.ts_ms, window_ms)
    if ends is None or ends[1][0] - ends[0][0] < window_ms / 2:
        return None
    (t0, v0), (t1, v1) = ends
    return (v1 - v0) / ((t1 - t0) / 3_600_000)


KIND = Kind("rate", needs=("op", "limit", "window_s"), measure=change_per_hour, judge=compare_limit, history=True)
