"""InfluxQL for the report. The database aggregates (counts, means, maxima, filters); Python gets
at most one row per hour, day or averaging window — or only the readings that broke a limit.

Storage (docs/protocol.md): measurement ``telemetry``, tags commune/station/kind, one float
field per metric, time in ms. Days are the site's local days: ``tz(...)`` shifts GROUP BY time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reports.influx import InfluxReader, quote_ident, quote_tag
from reports.period import Month
from villagewatch.contract import FIELD_SEQ, MEASUREMENT_TELEMETRY
from villagewatch.storage import Telemetry as T


def _where(commune: str, month: Month, station: str | None = None, end_ms: int | None = None) -> str:
    end = month.end_ms if end_ms is None else end_ms
    clause = f"{quote_ident(T.COMMUNE)} = {quote_tag(commune)} AND time >= {month.start_ms}ms AND time < {end}ms"
    if station is not None:
        clause += f" AND {quote_ident(T.STATION)} = {quote_tag(station)}"
    return clause


def _tz(month: Month) -> str:
    return f"tz({quote_tag(month.timezone)})"


def _bad_condition(metric: str, lo: float | None, hi: float | None) -> str:
    field = quote_ident(metric)
    parts = []
    if lo is not None:
        parts.append(f"{field} < {lo!r}")
    if hi is not None:
        parts.append(f"{field} > {hi!r}")
    return "(" + " OR ".join(parts) + ")"


def daily_counts(reader: InfluxReader, commune: str, month: Month) -> dict[str, dict[str, np.ndarray]]:
    """Readings per station, field and local day: ``{station: {field: counts[day]}}``.

    The ``seq`` field is in every reading, so ``counts[station]["seq"]`` counts readings.
    """
    q = (f"SELECT count(*) FROM {quote_ident(MEASUREMENT_TELEMETRY)} WHERE {_where(commune, month)} "
         f"GROUP BY time(1d), {quote_ident(T.STATION)} {_tz(month)}")
    out: dict[str, dict[str, np.ndarray]] = {}
    n_days = len(month.days)
    for series in reader.query(q):
        station = series.tags.get(T.STATION, "")
        per_field = out.setdefault(station, {})
        days = [month.day_index(t) for t in series.column("time")]
        for col in series.columns[1:]:
            counts = np.zeros(n_days, dtype=np.int64)
            for day, value in zip(days, series.column(col), strict=True):
                if 0 <= day < n_days and value:
                    counts[day] += int(value)
            per_field[col.removeprefix("count_")] = counts
    for per_field in out.values():
        per_field.setdefault(FIELD_SEQ, np.zeros(n_days, dtype=np.int64))
    return out


@dataclass
class Buckets:
    """Aggregates of one field over equal time buckets (bucket start in ms)."""

    starts_ms: np.ndarray
    values: dict[str, np.ndarray]  # aggregate name ("mean", "count", "max" ...) -> array


def buckets(reader: InfluxReader, commune: str, station: str, metric: str, month: Month, window_s: int,
            aggregates: tuple[str, ...] = ("mean", "count"), energy_mean: bool = False) -> Buckets:
    """One field of one station aggregated per window (empty windows left out).

    ``energy_mean``: "mean" is the energy mean of a sound level, Leq = 10·log10(mean(10^(L/10))),
    computed by the database through a subquery (only "mean" and "count" are then available).
    """
    field = quote_ident(metric)
    where = _where(commune, month, station)
    group = f"GROUP BY time({int(window_s)}s) fill(none) {_tz(month)}"
    if energy_mean:
        q = (f"SELECT 10 * log10(mean(e)) AS mean, count(e) AS count FROM "
             f"(SELECT pow(10, {field} / 10) AS e FROM {quote_ident(MEASUREMENT_TELEMETRY)} WHERE {where}) "
             f"{group}")
        aggregates = ("mean", "count")
    else:
        select = ", ".join(f"{fn}({field}) AS {fn}" for fn in aggregates)
        q = f"SELECT {select} FROM {quote_ident(MEASUREMENT_TELEMETRY)} WHERE {where} {group}"
    series = reader.query(q)
    if not series:
        return Buckets(np.zeros(0, dtype=np.int64), {fn: np.zeros(0) for fn in aggregates})
    s = series[0]
    starts = np.asarray(s.column("time"), dtype=np.int64)
    values = {fn: np.asarray([np.nan if v is None else v for v in s.column(fn)], dtype=float)
              for fn in aggregates}
    return Buckets(starts, values)


def sustained_daily_max(reader: InfluxReader, commune: str, station: str, metric: str, month: Month,
                        hold_s: int) -> Buckets:
    """Per local day, the highest value held for ``hold_s``: max over the day of the minimum of each
    ``hold_s`` bucket. One spiking reading cannot raise a flood alarm day (the alarm rule itself
    wants the level held for its duration)."""
    field = quote_ident(metric)
    q = (f"SELECT max(m) AS max FROM (SELECT min({field}) AS m FROM {quote_ident(MEASUREMENT_TELEMETRY)} "
         f"WHERE {_where(commune, month, station)} GROUP BY time({int(hold_s)}s) fill(none)) "
         f"GROUP BY time(1d) fill(none) {_tz(month)}")
    series = reader.query(q)
    if not series:
        return Buckets(np.zeros(0, dtype=np.int64), {"max": np.zeros(0)})
    s = series[0]
    return Buckets(np.asarray(s.column("time"), dtype=np.int64),
                   {"max": np.asarray([np.nan if v is None else v for v in s.column("max")], dtype=float)})


def violating_points(reader: InfluxReader, commune: str, station: str, metric: str, month: Month,
                     lo: float | None, hi: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Only the readings outside [lo, hi], filtered by the database: (times in ms, values)."""
    q = (f"SELECT {quote_ident(metric)} FROM {quote_ident(MEASUREMENT_TELEMETRY)} "
         f"WHERE {_where(commune, month, station)} AND {_bad_condition(metric, lo, hi)}")
    series = reader.query(q)
    if not series:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    s = series[0]
    return np.asarray(s.column("time"), dtype=np.int64), np.asarray(s.column(metric), dtype=float)


def hourly_profile(reader: InfluxReader, commune: str, month: Month) -> dict[str, Buckets]:
    """Hourly mean/min/max of every field of every station, for the time-series plots."""
    q = (f"SELECT mean(*), min(*), max(*) FROM {quote_ident(MEASUREMENT_TELEMETRY)} "
         f"WHERE {_where(commune, month)} GROUP BY time(1h), {quote_ident(T.STATION)} fill(none) {_tz(month)}")
    out: dict[str, Buckets] = {}
    for series in reader.query(q):
        station = series.tags.get(T.STATION, "")
        starts = np.asarray(series.column("time"), dtype=np.int64)
        values = {col: np.asarray([np.nan if v is None else v for v in series.column(col)], dtype=float)
                  for col in series.columns[1:]}
        out[station] = Buckets(starts, values)
    return out
