"""Assemble a monthly report: InfluxQL aggregates in, a ``Report`` out (no writing here)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from reports import compute, queries
from reports.influx import InfluxReader
from reports.limits import Limit, PackVersion
from reports.model import AqiDay, FloodSummary, Report, Row, WasteSummary
from reports.period import DAY_S, Month
from villagewatch.contract import FIELD_SEQ
from villagewatch.progress import Progress
from villagewatch.sites import Site, Station

HOUR_S = 3600


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


def build_report(site: Site, month: Month, reader: InfluxReader, catalog: LimitCatalog, settings: dict,
                 progress: Progress | None = None, now_ms: int | None = None) -> Report:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    # the running month is judged up to now: readings not yet due are not missing
    end_ms = max(month.start_ms, min(month.end_ms, now_ms))
    stations = list(site.stations.values())
    limits = {s.id: catalog.limits_for(s) for s in stations}
    steps = 2 + sum(len(v) for v in limits.values()) + len(stations)
    progress = progress or Progress(steps, "Đang tính báo cáo / computing report", enabled=False)
    progress.total = steps

    counts = queries.daily_counts(reader, site.commune, month)
    progress.advance(note="counts")
    profile = queries.hourly_profile(reader, site.commune, month)
    progress.advance(note="hourly profile")

    day_seconds = _day_seconds(month, end_ms)
    completeness: dict[str, np.ndarray] = {}
    totals: dict[str, tuple[int, int]] = {}
    rows: list[Row] = []
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
        for metric in st.metrics:
            n = int(per_field.get(metric, np.zeros(1)).sum())
            metric_limits = [lim for lim in limits[st.id] if lim.metric == metric]
            if not metric_limits:
                rows.append(Row(st, metric, None, n, expected, compute.completeness_pct(n, expected)))
            for lim in metric_limits:
                rows.append(_judge(reader, site, month, st, lim, n, expected, settings, end_ms))
                progress.advance(note=f"{st.id} {metric}")

    aqi: dict[str, list[AqiDay]] = {}
    flood: list[FloodSummary] = []
    waste: list[WasteSummary] = []
    for st in stations:
        if st.kind in settings["aqi_kinds"] and catalog.daily_aqi is not None:
            aqi[st.id] = _aqi_days(reader, site, month, st, catalog, settings)
        levels = sorted((lim for lim in limits[st.id] if lim.metric == "level" and lim.hi is not None),
                        key=lambda lim: lim.hi)
        if st.kind == "flood_gauge" and "level" in st.metrics:
            flood.append(_flood(reader, site, month, st, levels))
        if "fill" in st.metrics:
            waste.append(_waste(reader, site, month, st, counts.get(st.id, {}), settings))
        progress.advance(note=st.id)

    used = {lim.pack for lims in limits.values() for lim in lims} | (set(catalog.aqi_packs) if aqi else set())
    versions = [v for v in catalog.versions if v.pack in used]
    return Report(site, month, datetime.now(UTC), rows, completeness, totals, aqi, flood, waste,
                  versions, profile, settings, reader.queries, end_ms)


def _day_seconds(month: Month, end_ms: int) -> list[float]:
    """Seconds of each local day inside [month start, end_ms) (0 for days still to come)."""
    out = []
    for day in month.days:
        start = month.day_start_ms(day)
        out.append(max(0.0, min(DAY_S * 1000, end_ms - start) / 1000))
    return out


def _judge(reader: InfluxReader, site: Site, month: Month, st: Station, lim: Limit, readings: int,
           expected: int, settings: dict, end_ms: int) -> Row:
    row = Row(st, lim.metric, lim, readings, expected, compute.completeness_pct(readings, expected))
    if lim.window_s <= st.interval_s:
        # every reading is judged: the database returns only the readings outside the limit
        ts, values = queries.violating_points(reader, site.commune, st.id, lim.metric, month, lim.lo, lim.hi)
        judged = readings
        if lim.hours is not None:
            keep = _applies(lim, month, ts)
            ts, values = ts[keep], values[keep]
            hourly = queries.buckets(reader, site.commune, st.id, lim.metric, month, HOUR_S, ("count",))
            judged = int(hourly.values["count"][_applies(lim, month, hourly.starts_ms)].sum())
        row.judged = judged
        row.within_pct = None if judged == 0 else 100.0 * (judged - len(ts)) / judged
        row.outside_s = len(ts) * st.interval_s
        row.episodes = compute.episodes_from_points(
            ts, values, st.interval_s, lim.lo, lim.hi, _max_gap_s(st, settings))
        return row
    b = queries.buckets(reader, site.commune, st.id, lim.metric, month, lim.window_s,
                        energy_mean=lim.energy_mean)
    starts, means, counts = b.starts_ms, b.values["mean"], b.values["count"]
    keep = starts + lim.window_s * 1000 <= end_ms  # a window still running is not judged yet
    if lim.hours is not None:
        keep &= _applies(lim, month, starts)
    starts, means, counts = starts[keep], means[keep], counts[keep]
    stats = compute.window_stats(means, counts, lim.window_s / st.interval_s, lim.min_coverage, lim.lo, lim.hi)
    row.judged = stats.n_valid
    row.within_pct = stats.within_pct
    row.outside_s = int(stats.bad.sum()) * lim.window_s
    row.episodes = compute.episodes_from_windows(starts, means, stats.bad, lim.window_s, lim.lo, lim.hi)
    return row


def _max_gap_s(st: Station, settings: dict) -> float:
    return max(settings["episode_gap_intervals"] * st.interval_s, settings["episode_merge_minutes"] * 60)


def _applies(lim: Limit, month: Month, ts_ms: np.ndarray) -> np.ndarray:
    """Which instants fall in the limit's local hours (e.g. the 06–21 h noise limit)."""
    minutes = [(d := month.local(int(t))).hour * 60 + d.minute for t in ts_ms]
    return np.array([lim.applies_at(m) for m in minutes], dtype=bool)


def _aqi_days(reader: InfluxReader, site: Site, month: Month, st: Station, catalog: LimitCatalog,
              settings: dict) -> list[AqiDay]:
    # Decision 1459 §2.2.2 a: the PM 24-hour mean is the mean of the day's 1-hour means (the same
    # computation as the alert engine's rules.aqi.day_mean), so an hour with more readings does not
    # weigh more. The database gives the hourly means; a day needs 75 % of its hours, like alerts.
    per_metric = {}
    for metric in ("pm25", "pm10"):
        if metric in st.metrics:
            per_metric[metric] = queries.buckets(reader, site.commune, st.id, metric, month, 3600)
    min_hours = math.ceil(settings["min_window_coverage"] * 24)
    days = []
    for day in month.days:
        start = month.day_start_ms(day)
        means: dict[str, float] = {}
        for metric, b in per_metric.items():
            in_day = (b.starts_ms >= start) & (b.starts_ms < start + int(DAY_S * 1000)) & (b.values["count"] > 0)
            if int(in_day.sum()) >= min_hours:
                means[metric] = float(np.mean(b.values["mean"][in_day]))
        value = catalog.daily_aqi(means) if means else None
        days.append(AqiDay(day, None if value is None else int(value), means.get("pm25"), means.get("pm10")))
    return days


def _flood(reader: InfluxReader, site: Site, month: Month, st: Station, levels: list[Limit]) -> FloodSummary:
    hold_s = int(max([lim.duration_s for lim in levels] + [st.interval_s]))
    b = queries.sustained_daily_max(reader, site.commune, st.id, "level", month, hold_s)
    daily_max = np.full(len(month.days), np.nan)
    for t, v in zip(b.starts_ms, b.values["max"], strict=True):
        i = month.day_index(int(t))
        if 0 <= i < len(daily_max):
            daily_max[i] = v
    days = compute.days_at_or_above(daily_max, [lim.hi for lim in levels])
    has = ~np.isnan(daily_max)
    max_level = float(np.nanmax(daily_max)) if has.any() else None
    max_day = month.days[int(np.nanargmax(daily_max))] if has.any() else None
    return FloodSummary(st, levels, days, max_level, max_day, daily_max, hold_s)


def _waste(reader: InfluxReader, site: Site, month: Month, st: Station, per_field: dict[str, np.ndarray],
           settings: dict) -> WasteSummary:
    threshold = float(settings["waste_full_pct"])
    ts, values = queries.violating_points(reader, site.commune, st.id, "fill", month, None, threshold)
    episodes = compute.episodes_from_points(ts, values, st.interval_s, None, threshold,
                                            _max_gap_s(st, settings))
    readings = int(per_field.get("fill", np.zeros(1)).sum())
    return WasteSummary(st, threshold, episodes, len(ts), readings)
