"""``aqi``: VN_AQI (Decision 1459) against a band limit. ``aqi: hourly`` is judged on every reading
(NowCast of completed clock hours); ``aqi: daily`` once per local day by the engine's day closing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rules.kinds.base import Evidence, Kind, compare_limit

if TYPE_CHECKING:
    from rules.rulepack import Rule


def hourly(rule: Rule, ev: Evidence) -> float | None:
    return ev.hourly_aqi(ev.ts_ms)


KIND = Kind("aqi", needs=("aqi", "limit"), measure=hourly, judge=compare_limit, history=True,
            resolve_cites_value=False)
