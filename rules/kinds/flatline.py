"""``flatline``: a sensor whose value has not changed at all for ``window_s`` (stuck or frozen).

The measure is the stuck value when flat, NaN when the values moved (judged CLEAR), None while the
station has not been watched for 90 % of the window (HOLD)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rules.kinds.base import BREACH, CLEAR, Evidence, Kind

if TYPE_CHECKING:
    from rules.rulepack import Rule


def stuck_value(rule: Rule, ev: Evidence) -> float | None:
    value = ev.metrics.get(rule.metric)
    series = ev.series
    window_ms = int(rule.window_s * 1000)
    if value is None or series is None:
        return None
    oldest = series.oldest()
    if oldest is None or oldest > ev.ts_ms - window_ms * 0.9:
        return None  # not watched long enough
    return value if series.last_change(ev.ts_ms, window_ms) is None else math.nan


def judge(rule: Rule, value: float) -> str:
    return CLEAR if math.isnan(value) else BREACH


KIND = Kind("flatline", needs=("window_s",), measure=stuck_value, judge=judge, history=True,
            resolve_cites_value=False)
