"""InfluxQL for the report: readings per station, field and local day (completeness).

Everything judged is computed from the readings with their quality flags (reports.series), since
InfluxQL cannot leave out the readings flagged as sensor faults.

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
