"""Assemble a monthly report: readings in, a ``Report`` out (no writing here).

The database counts readings per day (completeness); everything judged is computed in numpy from
the station's readings with their quality flags (reports.series), so sensor faults are left out of
compliance, peaks, episodes, AQI, flood and waste, and each limit is judged day by day with the
rule version in force that day (reports.judge).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from reports import compute, judge, queries
from reports.influx import InfluxReader
from reports.limits import Limit, PackVersion
from reports.model import AqiDay, FloodSummary, Report, Row, WasteSummary
from reports.period import Month
from reports.series import StationData, station_data
from villagewatch.contract import FIELD_SEQ
from villagewatch.progress import Progress
from villagewatch.sites import Site, Station

HOUR_MS = 3_600_000


@dataclass
class LimitCatalog:
    """Where limits come from: normally the alert rule packs (reports.rules.from_rule_packs)."""

    limits_for: Callable[[Station], list[Limit]]
    versions: list[PackVersion] = field(default_factory=list)
    # daily VN_AQI from the day's mean concentrations {"pm25": µg/m³, "pm10": µg/m³}; None = no data
    daily_aqi: Callable[[dict[str, float]], int | None] | None = None
    aqi_packs: tuple[str, ...] = ()  # packs defining the AQI, listed on the report when it is drawn


def _expected(station: Station, seconds: float) -> int:
    return int(round(seconds / station.interval_s))


def month_days(month: Month, end_ms: int) -> judge.Days:
    starts = [month.day_start_ms(d) for d in month.days] + [month.end_ms]
    return judge.Days(np.asarray(starts, dtype=np.int64), list(month.days), end_ms)


def build_report(site: Site, month: Month, reader: InfluxReader, catalog: LimitCatalog, settings: dict,
                 progress: Progress | None = None, now_ms: int | None = None) -> Report:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    # the running month is judged up to now: readings not yet due are not missing
    end_ms = max(month.start_ms, min(month.end_ms, now_ms))
    days = month_days(month, end_ms)
    stations = list(site.stations.values())
    limits = {s.id: catalog.limits_for(s) for s in stations}
    progress = progress or Progress(1, "Đang tính báo cáo / computing report", enabled=False)
    progress.total = 1 + 2 * len(stations)

    counts = queries.daily_counts(reader, site.commune, month)
    progress.advance(note="counts")

    day_seconds = [max(0.0, min(86_400_000, end_ms - int(s)) / 1000) for s in days.starts[:-1]]
    completeness: dict[str, np.ndarray] = {}
    totals: dict[str, tuple[int, int]] = {}
    rows: list[Row] = []
    excluded: dict[str, dict[str, int]] = {}
    aqi: dict[str, list[AqiDay]] = {}
    flood: list[FloodSummary] = []
    waste: list[WasteSummary] = []
    profile: dict[str, queries.Buckets] = {}
    for st in stations:
        per_field = counts.get(st.id, {})
        expected_day = np.array([_expected(st, s) for s in day_seconds])
        received = per_field.get(FIELD_SEQ, np.zeros(len(month.days), dtype=np.int64))
        with np.errstate(invalid="ignore", divide="ignore"):
            completeness[st.id] = np.where(expected_day > 0,
                                           np.minimum(100.0, 100.0 * received / np.maximum(expected_day, 1)),
                                           np.nan)
        expected = int(expected_day.sum())
        totals[st.id] = (int(received.sum()), expected)
        data = (station_data(reader, site.commune, st.id, list(st.metrics), month.start_ms, end_ms)
                if received.sum() else StationData(np.zeros(0, dtype=np.int64), {}))
        progress.advance(note=f"{st.id} readings")
        excluded[st.id] = {m: data.excluded(m) for m in st.metrics if data.excluded(m)}
        for metric in st.metrics:
            n = int(data.present(metric).sum())
            metric_limits = [lim for lim in limits[st.id] if lim.metric == metric]
            if not metric_limits:
                rows.append(Row(st, metric, None, n, expected, compute.completeness_pct(n, expected),
                                excluded=data.excluded(metric)))
            for lim in metric_limits:
                rows.append(_judge(st, lim, data, n, expected, days, settings))
        profile[st.id] = _profile(data, st, end_ms, month)
        if st.kind in settings["aqi_kinds"] and catalog.daily_aqi is not None:
            aqi[st.id] = _aqi_days(data, month, days, catalog, settings)
        if st.kind == "flood_gauge" and "level" in st.metrics:
            levels = [r for r in rows if r.station.id == st.id and r.limit is not None and r.metric == "level"
                      and r.limit.hi is not None]
            flood.append(_flood(data, days, st, levels))
        if "fill" in st.metrics:
            waste.append(_waste(data, st, settings))
        progress.advance(note=st.id)

    used = {r.limit.pack for r in rows if r.limit is not None} | (set(catalog.aqi_packs) if aqi else set())
    versions = [v for v in catalog.versions if v.pack in used]
    return Report(site, month, datetime.now(UTC), rows, completeness, totals, aqi, flood, waste,
                  versions, profile, settings, reader.queries, end_ms, excluded)


def _max_gap_s(st: Station, settings: dict) -> float:
    return max(settings["episode_gap_intervals"] * st.interval_s, settings["episode_merge_minutes"] * 60)


def _judge(st: Station, lim: Limit, data: StationData, readings: int, expected: int, days: judge.Days,
           settings: dict) -> Row:
    row = Row(st, lim.metric, lim, readings, expected, compute.completeness_pct(readings, expected),
              excluded=data.excluded(lim.metric))
    ts, v = data.valid(lim.metric)
    if lim.window_s <= st.interval_s:
        j = judge.judge_readings(lim, ts, v, st.interval_s, days, int(settings["day_min_hours"]),
                                 _max_gap_s(st, settings))
    else:
        j = judge.judge_windows(lim, ts, v, st.interval_s, days, float(settings["day_min_windows_pct"]) / 100)
    row.judged, row.within_pct, row.outside_s, row.episodes = j.judged, j.within_pct, j.outside_s, j.episodes
    row.days, row.peak, row.rolling_fail_days = j.days, j.peak, j.rolling_fail_days
    row.verdict = judge.month_verdict(j, float(settings["month_min_days_pct"]))
    return row


def _profile(data: StationData, st: Station, end_ms: int, month: Month) -> queries.Buckets:
    """Hourly mean/min/max of every metric from valid readings only (faults are not drawn)."""
    hours = np.arange(month.start_ms, end_ms, HOUR_MS, dtype=np.int64)
    values: dict[str, np.ndarray] = {}
    for metric in st.metrics:
        ts, v = data.valid(metric) if metric in data.values else (np.zeros(0, dtype=np.int64), np.zeros(0))
        idx = (ts - month.start_ms) // HOUR_MS
        n = np.zeros(hours.size)
        s = np.zeros(hours.size)
        lo = np.full(hours.size, np.inf)
        hi = np.full(hours.size, -np.inf)
        if ts.size:
            np.add.at(n, idx, 1)
            np.add.at(s, idx, v)
            np.minimum.at(lo, idx, v)
            np.maximum.at(hi, idx, v)
        with np.errstate(invalid="ignore", divide="ignore"):
            values[f"mean_{metric}"] = np.where(n > 0, s / np.maximum(n, 1), np.nan)
        values[f"min_{metric}"] = np.where(n > 0, lo, np.nan)
        values[f"max_{metric}"] = np.where(n > 0, hi, np.nan)
    return queries.Buckets(hours, values)


def _aqi_days(data: StationData, month: Month, days: judge.Days, catalog: LimitCatalog,
              settings: dict) -> list[AqiDay]:
    # Decision 1459 §2.2.2 a: the PM 24-hour mean is the mean of the day's 1-hour means (the same
    # computation as the alert engine's rules.aqi.day_mean), so an hour with more readings does not
    # weigh more; a day needs 75 % of its hours (18 of 24), like alerts. Faulty readings left out.
    min_hours = math.ceil(settings["min_window_coverage"] * 24)
    hourly: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for metric in ("pm25", "pm10"):
        if metric in data.values:
            ts, v = data.valid(metric)
            idx = (ts - month.start_ms) // HOUR_MS
            uniq, inv = np.unique(idx, return_inverse=True)
            sums = np.bincount(inv, weights=v) if v.size else np.zeros(0)
            cnt = np.bincount(inv) if v.size else np.zeros(0)
            hourly[metric] = (month.start_ms + uniq * HOUR_MS, sums / np.maximum(cnt, 1))
    out = []
    for i, day in enumerate(month.days):
        start, end = days.starts[i], days.starts[i + 1]
        means: dict[str, float] = {}
        for metric, (starts, hmeans) in hourly.items():
            in_day = (starts >= start) & (starts < end)
            if int(in_day.sum()) >= min_hours:
                means[metric] = float(np.mean(hmeans[in_day]))
        value = catalog.daily_aqi(means) if means else None
        out.append(AqiDay(day, None if value is None else int(value), means.get("pm25"), means.get("pm10")))
    return out


def _flood(data: StationData, days: judge.Days, st: Station, level_rows: list[Row]) -> FloodSummary:
    level_rows = sorted(level_rows, key=lambda r: r.limit.hi)
    levels = [r.limit for r in level_rows]
    hold_s = int(max([lim.duration_s for lim in levels] + [st.interval_s]))
    ts, v = data.valid("level") if "level" in data.values else (np.zeros(0, dtype=np.int64), np.zeros(0))
    # the day's level: the highest level held for the alarm rule's duration (min of each hold-long
    # bucket, then the day's max), so one unflagged spike cannot make a peak
    daily_max = np.full(len(days.dates), np.nan)
    if ts.size:
        hold_ms = hold_s * 1000
        bucket = (ts - days.starts[0]) // hold_ms
        uniq, inv = np.unique(bucket, return_inverse=True)
        mins = np.full(uniq.size, np.inf)
        np.minimum.at(mins, inv, v)
        day_of = days.index(days.starts[0] + uniq * hold_ms)
        for d, m in zip(day_of.tolist(), mins.tolist(), strict=True):
            if 0 <= d < daily_max.size and not (m <= daily_max[d]):
                daily_max[d] = m
    reached = [r.count(judge.FAIL) for r in level_rows]  # days an alarm level was reached (rule's op)
    has = ~np.isnan(daily_max)
    max_level = float(np.nanmax(daily_max)) if has.any() else None
    max_day = days.dates[int(np.nanargmax(daily_max))] if has.any() else None
    return FloodSummary(st, levels, reached, max_level, max_day, daily_max, hold_s, data.excluded("level"))


def _waste(data: StationData, st: Station, settings: dict) -> WasteSummary:
    threshold = float(settings["waste_full_pct"])
    ts, v = data.valid("fill") if "fill" in data.values else (np.zeros(0, dtype=np.int64), np.zeros(0))
    over = v > threshold
    episodes = compute.episodes_from_points(ts[over], v[over], st.interval_s, None, threshold,
                                            _max_gap_s(st, settings))
    return WasteSummary(st, threshold, episodes, int(over.sum()), int(ts.size), data.excluded("fill"))
